"""Deliberately degenerate small models: the constant and near-constant tensors real checkpoints
have all the time (zero-initialised biases and position embeddings, dead ReLU channels, pruned
branches, all-equal softmax rows, a residual branch scaled to zero, one outlier channel).

Each is an edgekit MODEL (`tests.quant.degenerate_models:zero_residual_branch`); the tests export
them with `--weights` (their own state dict), since edgekit's live random init would perturb the
degenerate tensors away, exactly as it hid the problem before.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

CFG = {"input_size": (3, 32, 32), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
       "crop_pct": 1.0, "interpolation": "bilinear", "num_classes": 10}
# 10 classes: a 4-way random head had one sample with logit norm 0.07, where the worst-sample
# cosine measures noise rather than int8; 10-way norms stay away from 0.
CLASSES = 10
DIM = 32


class _Stem(nn.Module):
    """conv 3→32 stride 2, ReLU, conv stride 2: 8×8 tokens of 32 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, DIM, 3, 2, 1, bias=False)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(DIM, DIM, 3, 2, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.act(self.conv1(x)))


class _Net(nn.Module):
    """stem → residual body (the degenerate part) → flatten → head. The head reads every
    position (no global pool) and the stem's features reach it past the body, so the logits
    of these random weights depend on the input instead of being dominated by the biases,
    and a cosine or top-1 check against fp32 means something."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.pretrained_cfg = dict(CFG)
        self.stem = _Stem()
        self.body = body
        self.head = nn.Linear(DIM * 8 * 8, CLASSES, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        return self.head((h + self.body(h)).flatten(1))


class ZeroResidualBranch(nn.Module):
    """x + γ·conv(x) with γ = 0 (a residual branch scaled to zero: LayerScale / zero-init BN
    gamma), then x + pruned(x) where the pruned conv has all-zero weight and bias."""

    def __init__(self) -> None:
        super().__init__()
        self.branch = nn.Conv2d(DIM, DIM, 3, 1, 1)
        self.layer_gamma = nn.Parameter(torch.zeros(DIM, 1, 1))
        self.pruned = nn.Conv2d(DIM, DIM, 1)
        with torch.no_grad():
            self.pruned.weight.zero_()
            self.pruned.bias.zero_()
        self.mix = nn.Conv2d(DIM, DIM, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.layer_gamma * self.branch(x)
        x = x + self.pruned(x)
        return self.mix(torch.relu(x))


class ZeroWeightConv(nn.Module):
    """A zero-weight conv: its output is its bias per channel (a constant tensor), concatenated
    with a live path and mixed."""

    def __init__(self) -> None:
        super().__init__()
        self.live = nn.Conv2d(DIM, DIM // 2, 3, 1, 1)
        self.dead = nn.Conv2d(DIM, DIM // 2, 3, 1, 1)
        with torch.no_grad():
            self.dead.weight.zero_()
            self.dead.bias.fill_(0.25)
        self.mix = nn.Conv2d(DIM, DIM, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(torch.cat([torch.relu(self.live(x)), self.dead(x)], 1))


class ZeroParamAdded(nn.Module):
    """Token attention with a zero attention bias and a zero position embedding added, the way
    `timm.create_model` leaves LeViT / EfficientFormer attention biases."""

    def __init__(self, tokens: int = 64, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, DIM))
        self.attention_bias = nn.Parameter(torch.zeros(heads, tokens, tokens))
        self.qkv = nn.Linear(DIM, 3 * DIM)
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2) + self.pos_embed
        q, k, v = self.qkv(t).reshape(b, h * w, 3, self.heads, c // self.heads).permute(
            2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5 + self.attention_bias
        t = t + self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, h * w, c))
        return t.transpose(1, 2).reshape(b, c, h, w)


class DeadReluChannels(nn.Module):
    """conv → ReLU where a quarter of the channels are dead (bias −1e3: always zero after the
    ReLU), then a conv reading them, and a fully dead ReLU branch added."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(DIM, DIM, 3, 1, 1)
        self.dead_branch = nn.Conv2d(DIM, DIM, 1)
        with torch.no_grad():
            self.conv.bias[: DIM // 4] = -1e3
            self.dead_branch.bias.fill_(-1e3)
        self.mix = nn.Conv2d(DIM, DIM, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x)) + torch.relu(self.dead_branch(x))
        return self.mix(y)


class OutlierChannel(nn.Module):
    """One channel 1000× larger than the rest (a LayerNorm-style outlier), scaled back down
    in the next layer: per-tensor int8 of that activation crushes the other channels, so the
    sensitivity analysis has to keep something float."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(DIM, DIM, 3, 1, 1)
        self.mix = nn.Conv2d(DIM, DIM, 1)
        with torch.no_grad():
            self.conv.weight[0] *= 1000.0
            self.conv.bias[0] *= 1000.0
            self.mix.weight[:, 0] /= 1000.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mix(self.conv(x))


class IdenticalLogitsSoftmax(nn.Module):
    """Attention whose keys are (almost) zero: every score row is identical up to rounding, so
    the softmax output is 1/N give or take one ulp, the tensor that broke ONNX Runtime's
    histogram calibration on LeViT-128S with zero attention biases ("Too many bins for data
    range")."""

    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(DIM, DIM)
        self.k = nn.Linear(DIM, DIM)
        self.v = nn.Linear(DIM, DIM)
        with torch.no_grad():
            self.k.weight.mul_(1e-5)
            self.k.bias.zero_()
        self.proj = nn.Linear(DIM, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = x.flatten(2).transpose(1, 2)
        attn = (self.q(t) @ self.k(t).transpose(-2, -1)) * c ** -0.5
        t = t + self.proj(attn.softmax(-1) @ self.v(t))
        return t.transpose(1, 2).reshape(b, c, h, w)


class AbsentBranchAsZero(nn.Module):
    """MobileOne's multi-branch block (timm byobnet) with its scale and identity branches
    absent: their outputs start as the Python int 0, so the exported graph adds an integer 0
    to a float tensor (`0 + conv(x)`), which a PT2E quantizer annotating both add inputs
    observed as an int64 tensor (torch.histc: "not implemented for 'Long'")."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(DIM, DIM, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale_out = 0
        identity_out = 0
        out = scale_out + identity_out
        out += self.conv(x)
        return torch.relu(out)


BODIES: dict[str, Callable[[], nn.Module]] = {
    "zero_residual_branch": ZeroResidualBranch,
    "zero_weight_conv": ZeroWeightConv,
    "zero_param_added": ZeroParamAdded,
    "dead_relu_channels": DeadReluChannels,
    "outlier_channel": OutlierChannel,
    "identical_logits_softmax": IdenticalLogitsSoftmax,
    "absent_branch_as_zero": AbsentBranchAsZero,
}


class AllDegenerate(nn.Module):
    """Every degenerate body above in sequence: one model that carries each pattern through
    every target × calibration method in `make test` (each alone: `make test-all`). Each
    sits on a residual, so the input still reaches the logits through the random blocks.
    The outlier channel is an accuracy problem rather than a range one: the sensitivity
    analysis has to find it among all the other sites and float both ends of its edge."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(body() for body in BODIES.values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


def all_degenerate() -> nn.Module:
    return _Net(AllDegenerate())


def _factory(name: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return _Net(BODIES[name]())

    build.__name__ = name
    return build


zero_residual_branch = _factory("zero_residual_branch")
zero_weight_conv = _factory("zero_weight_conv")
zero_param_added = _factory("zero_param_added")
dead_relu_channels = _factory("dead_relu_channels")
outlier_channel = _factory("outlier_channel")
identical_logits_softmax = _factory("identical_logits_softmax")
absent_branch_as_zero = _factory("absent_branch_as_zero")
