"""Input checks shared by runtime adapters: the error shows expected vs given."""

from __future__ import annotations

import numpy as np

from edgekit.errors import InputMismatch


def check_inputs(expected: dict[str, tuple[tuple[int, ...], str]],
                 given: dict[str, np.ndarray]) -> None:
    """expected: name -> (shape with -1 for dynamic dims, numpy dtype name)."""
    for name, (shape, dtype) in expected.items():
        if name not in given:
            raise InputMismatch(f"missing input '{name}'; given {sorted(given)}",
                                hint=f"feed '{name}' with shape {tuple(shape)}")
        x = given[name]
        if len(shape) != x.ndim or any(d not in (-1, g) for d, g in zip(shape, x.shape,
                                                                        strict=False)):
            raise InputMismatch(
                f"input '{name}': expected shape {tuple(shape)}, given {tuple(x.shape)}",
                hint="check batch size and layout (NCHW vs NHWC)")
        if str(x.dtype) != dtype:
            raise InputMismatch(f"input '{name}': expected dtype {dtype}, given {x.dtype}",
                                hint=f"cast the input to {dtype}")
