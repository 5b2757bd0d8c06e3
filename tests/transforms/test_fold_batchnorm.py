import copy

import pytest
import torch
from timm.layers import BatchNormAct2d
from torch import nn

from edgekit.transforms.fold_batchnorm import FoldBatchNorm
from tests.transforms.helpers import live, max_rel_change


class ConvBn(nn.Module):
    def __init__(self, groups=1, bias=False, act_bn=False):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, 1, 1, groups=groups, bias=bias)
        self.bn = BatchNormAct2d(8, act_layer=nn.ReLU) if act_bn else nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x))


class SharedConvOutput(nn.Module):
    """The conv output also feeds the residual: folding BN into it would be wrong."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


class LinearBn(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)

    def forward(self, x):
        return self.bn(self.fc(x.mean((2, 3))))


@pytest.mark.parametrize("model,expected", [
    (ConvBn(), 1), (ConvBn(groups=4, bias=True), 1), (ConvBn(act_bn=True), 1),
    (LinearBn(), 1), (SharedConvOutput(), 0),
])
def test_fold_is_exact_where_legal(model, expected):
    model = live(model)
    x = torch.randn(2, 8, 6, 6)
    before = model(x)
    ref = copy.deepcopy(model)
    assert FoldBatchNorm()(model, x) == expected
    after = model(x)
    assert max_rel_change(before, after) < 1e-5
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert n_bn == sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ref.modules()) \
        - expected


def test_batchnorm_act_keeps_its_activation():
    model = live(ConvBn(act_bn=True))
    x = torch.randn(2, 8, 6, 6)
    FoldBatchNorm()(model, x)
    assert isinstance(model.bn, nn.ReLU)
    assert (model(x) >= 0).all()


def test_efficientformer_has_no_batchnorm_left():
    import timm

    from edgekit.transforms import DeployPipeline

    model = live(timm.create_model("efficientformer_l1"))
    x = torch.randn(1, 3, 224, 224)
    records = DeployPipeline().run(model, x)
    by_name = {r.name: r for r in records}
    assert by_name["fold_batchnorm"].changed >= 30
    assert by_name["fold_layerscale"].changed >= 10
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
