"""Small real models for fast tests (`tests.tiny_models:tiny_convnet` as an edgekit MODEL)."""

from __future__ import annotations

import torch
from torch import nn

CFG = {"input_size": (3, 32, 32), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
       "crop_pct": 1.0, "interpolation": "bilinear", "num_classes": 10}


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class TinyConvNet(nn.Module):
    """conv-BN-ReLU stem, a residual conv-BN branch, a token MLP with LayerScale, a head."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.pretrained_cfg = dict(CFG)
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16),
                                  nn.ReLU())
        self.branch_conv = nn.Conv2d(16, 16, 3, 1, 1, groups=4)
        self.branch_bn = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 16)
        self.ls = LayerScale(16)
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.branch_bn(self.branch_conv(x))
        t = x.flatten(2).transpose(1, 2)  # (B, N, C)
        t = t + self.ls(self.fc(t))
        return self.head(self.drop(t.mean(1)))


def tiny_convnet() -> nn.Module:
    return TinyConvNet()


class TinyHybrid(nn.Module):
    """The ops that made int8 slower than fp32: a 7×7 depthwise conv (FastViT), hardswish and
    an attention matmul of two activations (LeViT)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.pretrained_cfg = dict(CFG)
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.Hardswish())
        self.dw = nn.Conv2d(32, 32, 7, 1, 3, groups=32)
        self.pw = nn.Conv2d(32, 128, 1)
        self.qkv = nn.Linear(128, 384)  # 96 MACs per boundary element: int8 in ORT `fast`
        self.proj = nn.Linear(128, 128)
        self.head = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.dw(x)
        x = nn.functional.hardswish(self.pw(x))
        t = x.flatten(2).transpose(1, 2)  # (B, N, C)
        q, k, v = self.qkv(t).chunk(3, dim=-1)
        attn = (q @ k.transpose(1, 2) * 0.088).softmax(-1)
        t = t + self.proj(attn @ v)
        return self.head(t.mean(1))


def tiny_hybrid() -> nn.Module:
    return TinyHybrid()


def not_a_module() -> int:
    return 3


class TinySine(nn.Module):
    """A conv and a head around an elementwise sine: TFLite's SIN has no integer kernel."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.pretrained_cfg = dict(CFG)
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.sin(self.conv(x)).mean((2, 3)))


def tiny_sine() -> nn.Module:
    return TinySine()


class TinyPatchScale(nn.Module):
    """MobileViT's pattern: patches folded into the batch axis, then scaled by a constant
    (Vela 5.2 crashed on that for Ethos-U55/U65)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.pretrained_cfg = dict(CFG)
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)
        self.head = nn.Linear(8, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)  # (B, 8, 16, 16)
        b, c, h, w = y.shape
        patches = y.reshape(b * 4, c, h // 2, w // 2)  # 4 per image in the batch axis
        attn = (patches * 0.25) @ patches.transpose(-1, -2)  # a scaled "attention" product
        return self.head(attn.mean((2, 3)).reshape(b, 4, c).mean(1))


def tiny_patch_scale() -> nn.Module:
    return TinyPatchScale()
