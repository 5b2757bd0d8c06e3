"""Fold LayerScale (y = x·γ) into the linear / conv whose output it scales.

Linear (…, C) → LayerScale γ[C]:            W' = diag(γ)·W,  b' = γ ⊙ b
Conv (B, C, H, W) → LayerScale2d γ[C,1,1]:   same, per output channel.
Needed for EfficientFormer and MobileViT-style blocks where timm has no fuse hook. A LayerScale
after a non-linear producer (EfficientFormer's pool mixer, pool(x) − x) is left as a Mul.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgekit.transforms.graph import GraphView, replace_submodule

_PRODUCERS = {"conv1d", "conv2d", "linear"}
_CONSUMERS = {"mul", "mul_"}


def _gamma(module: nn.Module) -> torch.Tensor | None:
    for attr in ("gamma", "scale", "weight"):
        t = getattr(module, attr, None)
        if isinstance(t, torch.Tensor):
            return t
    return None


def _is_layerscale(module: nn.Module) -> bool:
    return "layerscale" in type(module).__name__.lower().replace("_", "")


class FoldLayerScale:
    name = "fold_layerscale"

    def __call__(self, model: nn.Module, example: Any) -> int:
        view = GraphView(model, example)
        calls = view.calls_per_module()
        muls: dict[str, int] = {}  # a LayerScale may also issue a view of γ; it must Mul once
        for n in view.nodes:
            if view.op(n) in _CONSUMERS:
                fqn = view.module_of(n)[0]
                muls[fqn] = muls.get(fqn, 0) + 1
        folded = 0
        for prod_node, mul_node in view.producer_consumer(_PRODUCERS, _CONSUMERS):
            prod_fqn, _ = view.module_of(prod_node)
            ls_fqn, _ = view.module_of(mul_node)
            if not prod_fqn or not ls_fqn or calls.get(prod_fqn) != 1 or muls.get(ls_fqn) != 1:
                continue
            producer = model.get_submodule(prod_fqn)
            ls = model.get_submodule(ls_fqn)
            gamma = _gamma(ls)
            if not _is_layerscale(ls) or gamma is None:
                continue
            if isinstance(producer, nn.Linear):
                channels, channel_dim_last = producer.out_features, True
            elif isinstance(producer, (nn.Conv1d, nn.Conv2d)):
                channels, channel_dim_last = producer.out_channels, False
            else:
                continue
            if gamma.numel() != channels:
                continue
            # The Mul must broadcast γ along the producer's channel axis.
            val = prod_node.meta.get("val")
            out = mul_node.meta.get("val")
            if val is None or out is None or tuple(out.shape) != tuple(val.shape):
                continue
            g_shape = tuple(gamma.shape)
            if channel_dim_last and g_shape != (channels,):
                continue
            if not channel_dim_last and (val.dim() < 3 or g_shape not in
                                         ((channels,) + (1,) * (val.dim() - 2),
                                          (channels,)) or (g_shape == (channels,)
                                                           and "2d" not in type(ls).__name__)):
                continue
            with torch.no_grad():
                g = gamma.detach().reshape(-1).double()
                w = producer.weight.double()
                producer.weight.copy_((w * g.view((-1,) + (1,) * (w.dim() - 1))).to(w.dtype))
                if producer.bias is not None:
                    producer.bias.copy_((producer.bias.double() * g).to(producer.bias.dtype))
            replace_submodule(model, ls_fqn, nn.Identity())
            folded += 1
        return folded
