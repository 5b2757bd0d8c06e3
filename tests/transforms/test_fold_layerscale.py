import torch
from timm.layers import LayerScale2d
from torch import nn

from edgekit.transforms.fold_layerscale import FoldLayerScale
from tests.tiny_models import LayerScale
from tests.transforms.helpers import live, max_rel_change


class LinearLs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.ls = LayerScale(8)

    def forward(self, x):
        return x + self.ls(self.fc(x))


class ConvLs2d(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1, bias=False)
        self.ls = LayerScale2d(8)

    def forward(self, x):
        return x + self.ls(self.conv(x))


class PoolMixerLs(nn.Module):
    """EfficientFormer's pool mixer: pool(x) - x is not a linear producer; must stay a Mul."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)
        self.ls = LayerScale2d(8)

    def forward(self, x):
        return x + self.ls(self.pool(x) - x)


def _check(model, x, expected):
    model = live(model)
    before = model(x)
    assert FoldLayerScale()(model, x) == expected
    assert max_rel_change(before, model(x)) < 1e-5
    return model


def test_linear_layerscale_folds():
    m = _check(LinearLs(), torch.randn(2, 5, 8), 1)
    assert isinstance(m.ls, nn.Identity)


def test_conv_layerscale2d_folds_even_without_bias():
    m = _check(ConvLs2d(), torch.randn(2, 8, 4, 4), 1)
    assert isinstance(m.ls, nn.Identity)


def test_layerscale_after_pool_mixer_is_kept():
    m = _check(PoolMixerLs(), torch.randn(2, 8, 4, 4), 0)
    assert isinstance(m.ls, LayerScale2d)
