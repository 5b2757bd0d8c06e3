"""Bake LeViT / EfficientFormer / EfficientViT-MSRA attention biases into constants.

These blocks hold a table `attention_biases[heads, N_offsets]` and gather it with
`attention_bias_idxs[N, N]` (|Δy|·W + |Δx|) on every call. The gathered [heads, N, N] tensor is a
constant at inference; a Gather in the exported graph is a known ONNX/TFLite failure point, so we
store the gathered tensor as a buffer and return it directly.
"""

from __future__ import annotations

import types
from typing import Any

import torch
from torch import nn


def _baked_attention_biases(self: nn.Module, device: torch.device) -> torch.Tensor:
    baked: torch.Tensor = self.get_buffer("attention_bias_baked")
    return baked


class BakeAttentionBias:
    name = "bake_attention_bias"

    def __call__(self, model: nn.Module, example: Any) -> int:
        baked = 0
        for module in model.modules():
            table = getattr(module, "attention_biases", None)
            idxs = getattr(module, "attention_bias_idxs", None)
            if not isinstance(table, torch.Tensor) or not isinstance(idxs, torch.Tensor):
                continue
            if not callable(getattr(module, "get_attention_biases", None)):
                continue
            with torch.no_grad():
                gathered = table.detach()[:, idxs].clone()
            if "attention_bias_baked" in module._buffers:
                module.attention_bias_baked = gathered
            else:
                module.register_buffer("attention_bias_baked", gathered, persistent=False)
            setattr(module, "get_attention_biases",  # noqa: B010 - typed instance override
                    types.MethodType(_baked_attention_biases, module))
            cache = getattr(module, "attention_bias_cache", None)
            if isinstance(cache, dict):
                cache.clear()
            baked += 1
        return baked
