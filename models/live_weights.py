""""Live" random weights: make every block of a randomly initialised model compute something.

timm's init zeroes or 1e-5-scales residual branches (zero-init BN gamma, LayerScale 1e-5, zero
attention biases) and leaves BN running stats at (0, 1). Converters then fold whole blocks away,
and latency/fidelity numbers describe a different, smaller network. We perturb every
normalisation scale/shift, running statistic, layer scale and attention bias with a seeded
generator, the way trained weights look: scales O(1), shifts O(0.1).
"""

from __future__ import annotations

import torch
from torch import nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_SCALE_NAMES = ("gamma", "layer_scale", "ls", "scale")


def _is_scale_param(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in _SCALE_NAMES or leaf.startswith("gamma") or leaf.startswith("layer_scale")


@torch.no_grad()
def make_live(model: nn.Module, seed: int = 0) -> int:
    """Perturb scales/shifts/statistics in place; returns the number of tensors changed."""
    g = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> None:
        t.copy_(torch.rand(t.shape, generator=g, dtype=torch.float32).to(t.dtype) * (hi - lo) + lo)

    def normal(t: torch.Tensor, std: float) -> None:
        t.copy_(torch.randn(t.shape, generator=g, dtype=torch.float32).to(t.dtype) * std)

    changed = 0
    for module in model.modules():
        if isinstance(module, _NORMS):
            if getattr(module, "weight", None) is not None:
                uniform(module.weight, 0.5, 1.5)
                changed += 1
            if getattr(module, "bias", None) is not None:
                normal(module.bias, 0.1)
                changed += 1
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                normal(module.running_mean, 0.1)
                uniform(module.running_var, 0.5, 1.5)
                changed += 2
    for name, param in model.named_parameters():
        if not param.is_floating_point():
            continue
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "attention_biases":
            normal(param, 0.5)
            changed += 1
        elif _is_scale_param(name) and param.dim() <= 1 or leaf.startswith("gamma"):
            uniform(param, 0.2, 1.0)  # layer scales: trained values sit well below 1
            changed += 1
    # Caches derived from parameters (timm attention-bias caches) are now stale.
    for module in model.modules():
        cache = getattr(module, "attention_bias_cache", None)
        if isinstance(cache, dict):
            cache.clear()
    return changed


@torch.no_grad()
def batchnorm_stats_from_data(model: nn.Module, input_size: tuple[int, ...], seed: int = 0,
                              n: int = 16) -> int:
    """Set every BatchNorm's running mean/var to the statistics of its own input, as training
    leaves them: one cumulative pass in train mode over `n` seeded N(0, 1) images (the
    normalised input range), with the perturbed gammas and betas kept. Returns the number of
    BatchNorms set. The model is left in eval mode."""
    g = torch.Generator().manual_seed(seed + 1)
    norms = [m for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    model.train()
    try:
        model(torch.randn((n, *input_size), generator=g))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    return len(norms)
