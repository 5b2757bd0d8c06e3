"""RepQ-ViT scale reparameterization of post-LayerNorm activations (exact in fp32).

Post-LayerNorm activations of ViTs have a few channels with ranges far wider than the rest, so
one per-tensor int8 scale wastes most levels on the quiet channels. RepQ-ViT calibrates them per
channel (s_c, z_c), then moves the per-channel part into the weights, where it is free:

    per-tensor target: s̃ = mean(s), z̃ = mean(z);   r = s / s̃,   δ = (z − z̃) · s̃
    LayerNorm:         γ' = γ / r,   β' = β / r + δ          (so x' = x / r + δ)
    next Linear(s):    W' = W · diag(r),   b' = b − W' δ      (so W' x' + b' = W x + b)

After this, per-tensor (s̃, z̃) quantization of x' lands every channel on the same grid its own
per-channel (s_c, z_c) would have. Applied where a LayerNorm feeds only Linear layers (ViT
attention qkv / MLP fc1 in EfficientFormer's last stage, MobileViT) — and across the
attention→conv *bridge* (Q-HyViT's hard case): MobileViT's final transformer LayerNorm reaches its
1×1 conv_proj through the fold (view/transpose/reshape only), so the same fold into that conv's
input channels applies. Each site is checked to be an fp32 identity on the calibration samples
and undone if not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from edgekit.transforms.graph import GraphView

# ops that move elements without mixing channels: the bridge from tokens back to feature maps
# (MobileViT's fold) is built from these. A rewrite through them is verified numerically.
_LAYOUT_OPS = {"view", "reshape", "_unsafe_view", "permute", "transpose", "flatten",
               "unflatten", "contiguous", "clone", "expand", "alias"}


def _consumers(view: GraphView, node: Any) -> list[Any] | None:
    """Linear / 1×1-conv nodes reading `node`, through layout-only ops; None if anything else
    reads it."""
    found = []
    for user in node.users:
        op = view.op(user)
        if op in ("linear", "conv2d") and user.args and user.args[0] is node:
            found.append(user)
        elif op in _LAYOUT_OPS:
            deeper = _consumers(view, user)
            if deeper is None:
                return None
            found += deeper
        else:
            return None
    return found


def _ln_sites(model: nn.Module, example: torch.Tensor) -> list[tuple[str, list[str]]]:
    """(LayerNorm, consumers): consumers are Linear, or 1×1 Conv2d (groups 1) across a bridge."""
    view = GraphView(model, example)
    calls = view.calls_per_module()
    sites = []
    for node in view.nodes:
        if view.op(node) != "layer_norm":
            continue
        ln_fqn, _ = view.module_of(node)
        ln = model.get_submodule(ln_fqn) if ln_fqn else None
        if not isinstance(ln, nn.LayerNorm) or ln.weight is None or ln.bias is None \
                or calls.get(ln_fqn) != 1 or len(ln.normalized_shape) != 1:
            continue
        consumers = _consumers(view, node)
        if not consumers:
            continue
        fqns = [view.module_of(u)[0] for u in consumers]
        if any(calls.get(f) != 1 for f in fqns):
            continue
        mods = [model.get_submodule(f) for f in fqns]
        if all(isinstance(m, nn.Linear) or (isinstance(m, nn.Conv2d) and m.groups == 1
                                             and m.kernel_size == (1, 1)) for m in mods):
            sites.append((ln_fqn, fqns))
    return sites


def reparameterize_layernorms(model: nn.Module, calib: np.ndarray, example: torch.Tensor,
                              batch: int = 8) -> dict[str, Any]:
    """Rewrite `model` in place; returns what was done (sites, fp32 max relative change)."""
    sites = _ln_sites(model, example)
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
    scale = float(before.abs().max()) or 1.0
    applied, skipped = [], []
    with torch.no_grad():
        for ln_fqn, consumers in sites:
            mn = torch.clamp(lo[ln_fqn].double(), max=0.0)
            mx = torch.clamp(hi[ln_fqn].double(), min=0.0)
            s = torch.clamp((mx - mn) / 255.0, min=1e-8)
            z = torch.round(-mn / s)
            s_t, z_t = s.mean(), torch.round(z.mean())
            r = s / s_t
            delta = (z - z_t) * s_t
            saved = {f: {k: v.clone() for k, v in model.get_submodule(f).state_dict().items()}
                     for f in [ln_fqn, *consumers]}
            ln = model.get_submodule(ln_fqn)
            assert isinstance(ln, nn.LayerNorm)
            ln.weight.copy_((ln.weight.double() / r).float())
            ln.bias.copy_((ln.bias.double() / r + delta).float())
            for fqn in consumers:
                _fold_into_consumer(model.get_submodule(fqn), r, delta)
            after = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
            if float((after - before).abs().max()) / scale > 1e-4:  # not an identity: undo
                for f, state in saved.items():
                    mod = model.get_submodule(f)
                    if "bias" in state and getattr(mod, "bias", None) is None:
                        mod.bias = nn.Parameter(state["bias"])
                    mod.load_state_dict(state)
                skipped.append(ln_fqn)
            else:
                applied.append((ln_fqn, consumers))
        after = torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)])
    max_rel = float((after - before).abs().max()) / scale
    bridges = [c for _, cs in applied for c in cs
               if isinstance(model.get_submodule(c), nn.Conv2d)]
    return {"layernorms": len(applied), "consumers": sum(len(v) for _, v in applied),
            "bridge_convs": bridges, "skipped_not_identity": skipped,
            "fp32_max_rel_change": max_rel, "sites": [ln for ln, _ in applied][:20]}


def _fold_into_consumer(mod: nn.Module, r: torch.Tensor, delta: torch.Tensor) -> None:
    """W' = W·diag(r) over input channels, b' = b − W'·δ (Linear, or 1×1 Conv2d)."""
    assert isinstance(mod, (nn.Linear, nn.Conv2d))
    w = mod.weight.double()
    w = w * (r[None, :] if w.dim() == 2 else r[None, :, None, None])
    w2d = w.reshape(w.shape[0], w.shape[1])
    b = (mod.bias.double() if mod.bias is not None
         else torch.zeros(w.shape[0], dtype=torch.float64)) - w2d @ delta
    mod.weight.copy_(w.float())
    if mod.bias is None:
        mod.bias = nn.Parameter(b.float())
    else:
        mod.bias.copy_(b.float())
