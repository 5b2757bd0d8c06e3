"""Structural reparameterization through timm's own hooks: `fuse()` (LeViT, RepViT,
EfficientViT-MSRA, TinyViT), `reparameterize()` (MobileOne/RepVGG, FastViT, NextViT) and
`switch_to_deploy()`. Multi-branch training blocks become single convs."""

from __future__ import annotations

from typing import Any

from torch import nn

_HOOKS = ("fuse", "reparameterize", "switch_to_deploy")


class TimmReparameterize:
    name = "reparameterize"

    def __call__(self, model: nn.Module, example: Any) -> int:
        from timm.utils.model import reparameterize_model

        sites = sum(1 for fqn, m in model.named_modules()
                    if fqn and any(callable(getattr(m, h, None)) for h in _HOOKS))
        reparameterize_model(model, inplace=True)
        return sites
