"""Fold BatchNorm into the conv / linear that feeds it.

Conv→BN:   W' = W·γ/√(σ²+ε) per output channel,  b' = β + (b−μ)·γ/√(σ²+ε)  (groups kept).
Linear→BN1d on (N, C): the same on rows.
Sites come from the exported graph: the BN must read only that producer's output, and the
producer's output must feed nothing else. timm's BatchNormAct2d keeps its drop/act after the fold.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgekit.transforms.graph import GraphView, replace_submodule

_PRODUCERS = {"conv1d", "conv2d", "linear"}
_CONSUMERS = {"batch_norm", "_native_batch_norm_legit_no_training"}


@torch.no_grad()
def fold_into(producer: nn.Conv1d | nn.Conv2d | nn.Linear, bn: nn.modules.batchnorm._BatchNorm
              ) -> None:
    assert bn.running_mean is not None and bn.running_var is not None
    inv_std = torch.rsqrt(bn.running_var.double() + bn.eps)
    gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(inv_std)
    beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(inv_std)
    scale = gamma * inv_std
    w = producer.weight.double()
    shape = (-1,) + (1,) * (w.dim() - 1)
    producer.weight.copy_((w * scale.view(shape)).to(producer.weight.dtype))
    bias = producer.bias.double() if producer.bias is not None else torch.zeros_like(scale)
    new_bias = beta + (bias - bn.running_mean.double()) * scale
    if producer.bias is None:
        producer.bias = nn.Parameter(new_bias.to(producer.weight.dtype))
    else:
        producer.bias.copy_(new_bias.to(producer.bias.dtype))


def _after_fold(bn: nn.Module) -> nn.Module:
    """What stays of a BN module after folding: timm's BatchNormAct keeps drop + act."""
    rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None))
            if isinstance(m, nn.Module) and not isinstance(m, nn.Identity)]
    if not rest:
        return nn.Identity()
    return rest[0] if len(rest) == 1 else nn.Sequential(*rest)


class FoldBatchNorm:
    name = "fold_batchnorm"

    def __call__(self, model: nn.Module, example: Any) -> int:
        view = GraphView(model, example)
        calls = view.calls_per_module()
        folded = 0
        for prod_node, bn_node in view.producer_consumer(_PRODUCERS, _CONSUMERS):
            prod_fqn, _ = view.module_of(prod_node)
            bn_fqn, _ = view.module_of(bn_node)
            if not prod_fqn or not bn_fqn or prod_fqn == bn_fqn:
                continue
            producer = model.get_submodule(prod_fqn)
            bn = model.get_submodule(bn_fqn)
            if not isinstance(producer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                continue
            if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or not bn.track_running_stats:
                continue
            # BN bn_node is the module's only call (besides drop/act), and the producer is not
            # shared with another call site.
            if calls.get(prod_fqn, 0) != 1 or sum(
                    1 for n in view.nodes if view.module_of(n)[0] == bn_fqn
                    and view.op(n) in _CONSUMERS) != 1:
                continue
            out_channels = (producer.out_features if isinstance(producer, nn.Linear)
                            else producer.out_channels)
            val = prod_node.meta.get("val")
            if bn.num_features != out_channels or val is None or val.dim() < 2 \
                    or int(val.shape[1]) != out_channels:
                continue  # e.g. Linear on (B, N, C) feeding BN1d over N: not a per-channel fold
            if isinstance(producer, nn.Linear) and val.dim() != 2:
                continue
            fold_into(producer, bn)
            replace_submodule(model, bn_fqn, _after_fold(bn))
            folded += 1
        return folded
