"""RepQ-ViT scale reparameterization of post-LayerNorm activations (exact in fp32).

Post-LayerNorm activations of ViTs have a few channels with ranges far wider than the rest, so
one per-tensor int8 scale wastes most levels on the quiet channels. RepQ-ViT calibrates them per
channel (s_c, z_c), then moves the per-channel part into the weights, where it is free:

    per-tensor target: s̃ = mean(s), z̃ = mean(z);   r = s / s̃,   δ = (z − z̃) · s̃
    LayerNorm:         γ' = γ / r,   β' = β / r + δ          (so x' = x / r + δ)
    next Linear(s):    W' = W · diag(r),   b' = b − W' δ      (so W' x' + b' = W x + b)

After this, per-tensor (s̃, z̃) quantization of x' lands every channel on the same grid its own
per-channel (s_c, z_c) would have. Applied where a LayerNorm feeds only Linear layers (ViT
attention qkv / MLP fc1 in EfficientFormer's last stage, MobileViT). The rewrite is checked to be
an fp32 identity on the calibration samples before it is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from edgekit.transforms.graph import GraphView


def _ln_to_linears(model: nn.Module, example: torch.Tensor) -> list[tuple[str, list[str]]]:
    view = GraphView(model, example)
    calls = view.calls_per_module()
    sites = []
    for node in view.nodes:
        if view.op(node) != "layer_norm":
            continue
        ln_fqn, _ = view.module_of(node)
        users = list(node.users)
        if not ln_fqn or calls.get(ln_fqn) != 1 or not users:
            continue
        linears = [view.module_of(u)[0] for u in users if view.op(u) == "linear"
                   and u.args and u.args[0] is node]
        if len(linears) != len(users) or any(calls.get(f) != 1 for f in linears):
            continue
        ln = model.get_submodule(ln_fqn)
        if not isinstance(ln, nn.LayerNorm) or ln.weight is None or ln.bias is None:
            continue
        if all(isinstance(model.get_submodule(f), nn.Linear) for f in linears):
            sites.append((ln_fqn, linears))
    return sites


def reparameterize_layernorms(model: nn.Module, calib: np.ndarray, example: torch.Tensor,
                              batch: int = 8) -> dict[str, Any]:
    """Rewrite `model` in place; returns what was done (sites, fp32 max relative change)."""
    sites = _ln_to_linears(model, example)
    if not sites:
        return {"layernorms": 0}
    lo: dict[str, torch.Tensor] = {}
    hi: dict[str, torch.Tensor] = {}
    hooks = []
    for ln_fqn, _ in sites:
        def hook(_m: nn.Module, _i: Any, out: torch.Tensor, key: str = ln_fqn) -> None:
            flat = out.detach().reshape(-1, out.shape[-1])
            mn, mx = flat.min(0).values, flat.max(0).values
            lo[key] = torch.minimum(lo[key], mn) if key in lo else mn
            hi[key] = torch.maximum(hi[key], mx) if key in hi else mx
        hooks.append(model.get_submodule(ln_fqn).register_forward_hook(hook))
    x = torch.from_numpy(calib)
    with torch.no_grad():
        before = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for ln_fqn, linears in sites:
            mn = torch.clamp(lo[ln_fqn].double(), max=0.0)
            mx = torch.clamp(hi[ln_fqn].double(), min=0.0)
            s = torch.clamp((mx - mn) / 255.0, min=1e-8)
            z = torch.round(-mn / s)
            s_t, z_t = s.mean(), torch.round(z.mean())
            r = s / s_t
            delta = (z - z_t) * s_t
            ln = model.get_submodule(ln_fqn)
            assert isinstance(ln, nn.LayerNorm)
            ln.weight.copy_((ln.weight.double() / r).float())
            ln.bias.copy_((ln.bias.double() / r + delta).float())
            for fqn in linears:
                lin = model.get_submodule(fqn)
                assert isinstance(lin, nn.Linear)
                w = lin.weight.double() * r[None, :]
                b = (lin.bias.double() if lin.bias is not None
                     else torch.zeros(w.shape[0], dtype=torch.float64)) - w @ delta
                lin.weight.copy_(w.float())
                if lin.bias is None:
                    lin.bias = nn.Parameter(b.float())
                else:
                    lin.bias.copy_(b.float())
        after = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    scale = float(before.abs().max()) or 1.0
    max_rel = float((after - before).abs().max()) / scale
    return {"layernorms": len(sites), "linears": sum(len(v) for _, v in sites),
            "fp32_max_rel_change": max_rel,
            "sites": [ln for ln, _ in sites][:20]}
