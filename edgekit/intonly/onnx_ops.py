"""Exact integer arithmetic in ONNX, matching reference.py bit for bit.

ONNX has no signed arithmetic shift (BitShift is unsigned-only) and its integer Div truncates
toward zero, so the reference's floor semantics are built from Div/Where/Less on int64:

    floor_div(x, d), d > 0 constant:   Div(x + Where(x < 0, 1 − d, 0), d)
        (for x < 0, truncating (x − d + 1)/d toward zero = ⌊x/d⌋)
    x >> c  (floor shift)           =  floor_div(x, 2^c)
    round_half_up(x / 2^c)          =  floor_div(x + 2^(c−1), 2^c)

A `GraphBuilder` collects nodes and int64 constants; names are unique and readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class GraphBuilder:
    prefix: str = "ek"
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    _count: int = 0
    _consts: dict[tuple[str, int], str] = field(default_factory=dict)

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}_{hint}_{self._count}"

    def const(self, value: float | np.ndarray | np.generic, dtype: Any = np.int64) -> str:
        from onnx import numpy_helper

        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str + str(arr.shape), hash(arr.tobytes()))
        if arr.ndim == 0 and key in self._consts:
            return self._consts[key]
        name = self.name("c")
        self.initializers.append(numpy_helper.from_array(arr, name))
        if arr.ndim == 0:
            self._consts[key] = name
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out

    # --- exact integer helpers -----------------------------------------------------------------

    def floor_div(self, x: str, d: int) -> str:
        """⌊x / d⌋ for int64 x and a positive constant d."""
        if d <= 0:
            raise ValueError("floor_div needs a positive divisor")
        if d == 1:
            return x
        neg = self.op("Less", [x, self.const(0)], "isneg")
        adj = self.op("Where", [neg, self.const(1 - d), self.const(0)], "adj")
        return self.op("Div", [self.op("Add", [x, adj]), self.const(d)], "floordiv")

    def floor_div_tensor(self, x: str, d: str) -> str:
        """⌊x / d⌋ for int64 x and a positive int64 tensor d (same or broadcast shape)."""
        neg = self.op("Less", [x, self.const(0)], "isneg")
        one_minus_d = self.op("Sub", [self.const(1), d])
        adj = self.op("Where", [neg, one_minus_d, self.const(0)], "adj")
        return self.op("Div", [self.op("Add", [x, adj]), d], "floordiv")

    def shift_right(self, x: str, c: int) -> str:
        """Arithmetic (floor) shift x >> c."""
        return self.floor_div(x, 1 << c) if c > 0 else x

    def shift_round(self, x: str, c: int) -> str:
        """round(x / 2^c), half up."""
        if c == 0:
            return x
        return self.floor_div(self.op("Add", [x, self.const(1 << (c - 1))]), 1 << c)

    def requantize(self, x: str, b: int, c: int, qmin: int, qmax: int) -> str:
        """clamp(round(x · b / 2^c)) — reference.requantize."""
        y = self.shift_round(self.op("Mul", [x, self.const(b)], "mulb"), c)
        return self.op("Clip", [y, self.const(qmin), self.const(qmax)], "clip")

    def graph(self, inputs: list[Any], outputs: list[Any], name: str = "edgekit_int") -> Any:
        from onnx import helper

        return helper.make_graph(self.nodes, name, inputs, outputs, self.initializers)
