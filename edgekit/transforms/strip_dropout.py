"""Dropout / DropPath -> Identity. No-ops in eval, but they leave nodes (and, for DropPath, a
bernoulli some converters reject) in traced graphs."""

from __future__ import annotations

from typing import Any

from torch import nn

from edgekit.transforms.graph import replace_submodule

_DROP_TYPES: tuple[type, ...] = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d,
                                 nn.AlphaDropout)


def _is_drop(module: nn.Module) -> bool:
    return isinstance(module, _DROP_TYPES) or type(module).__name__ in ("DropPath", "DropBlock2d")


class StripDropout:
    name = "strip_dropout"

    def __call__(self, model: nn.Module, example: Any) -> int:
        targets = [fqn for fqn, m in model.named_modules() if fqn and _is_drop(m)]
        for fqn in targets:
            replace_submodule(model, fqn, nn.Identity())
        return len(targets)
