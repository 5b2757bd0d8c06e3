"""MobileViTv2 linear self-attention without `expand_as`.

timm computes `relu(value) * context_vector.expand_as(value)`; litert-torch lowers the explicit
expand into a tfl.mul whose operands it then rejects as not broadcast-compatible. The same
product with implicit broadcasting, `relu(value) * context_vector`, is bit-identical and
converts everywhere.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn


def _self_attn_broadcast(self: Any, x: torch.Tensor) -> torch.Tensor:
    qkv = self.qkv_proj(x)  # [B, 1 + 2d, P, N]
    query, key, value = qkv.split([1, self.embed_dim, self.embed_dim], dim=1)
    scores = self.attn_drop(F.softmax(query, dim=-1))  # [B, 1, P, N]
    context = (key * scores).sum(dim=-1, keepdim=True)  # [B, d, P, 1]
    return self.out_drop(self.out_proj(F.relu(value) * context))  # type: ignore[no-any-return]


class BroadcastLinearAttention:
    name = "broadcast_linear_attention"

    def __call__(self, model: nn.Module, example: Any) -> int:
        changed = 0
        for module in model.modules():
            if type(module).__name__ == "LinearSelfAttention" and hasattr(module, "qkv_proj"):
                setattr(module, "_forward_self_attn",  # noqa: B010 - instance override
                        types.MethodType(_self_attn_broadcast, module))
                changed += 1
        return changed
