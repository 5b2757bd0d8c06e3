"""A small integer-only IR with two backends: the numpy reference executor and an ONNX emitter.

One `IntGraph` (a list of ops over named integer tensors) is built once from a calibrated model;
`run_reference` defines its result with `reference.py`, `to_onnx` emits standard ONNX integer
ops (MatMulInteger / ConvInteger → int64 arithmetic → Clip → Cast). Only the entry
QuantizeLinear and the exit DequantizeLinear touch float; tests compare the two backends bit for
bit in onnxruntime.

Integer tensors are int8 between layers (int32 accumulators, int64 arithmetic inside a layer).
Per-output-channel requantization uses per-channel dyadic multipliers with a shared shift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.intonly import reference as ref

Q8 = (-128, 127)


def channel_dyadic(ratios: np.ndarray, bits: int = 31) -> tuple[np.ndarray, int]:
    """Per-channel ratios ≈ b_k / 2^c with one shared shift c (the largest ratio sets it, so
    every b_k < 2^bits)."""
    ratios = np.asarray(ratios, dtype=np.float64).reshape(-1)
    if not (ratios > 0).all():
        raise ValueError("requantization ratios must be positive")
    _, e = math.frexp(float(ratios.max()))
    c = bits - e
    if not 0 <= c <= 62:
        raise ValueError(f"ratio range needs shift {c}, outside 0..62")
    b = np.round(ratios * 2.0**c).astype(np.int64)
    return np.maximum(b, 1), c


@dataclass(frozen=True)
class Quantize:
    """float input → int8 (the one float→int step)."""
    input: str
    output: str
    scale: float


@dataclass(frozen=True)
class Dequantize:
    """int → float output (the one int→float step)."""
    input: str
    output: str
    scale: float


@dataclass(frozen=True)
class Linear:
    """y = clamp(round((x·Wᵀ + bias) · b / 2^c)); x int8 [..., in], W int8 [out, in],
    bias int32 at scale s_x·s_w, (b, c) per output channel."""
    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: int
    relu: bool = False


@dataclass(frozen=True)
class Conv2d:
    """Linear's arithmetic over a 2-D convolution (NCHW, int8 weight [out, in/groups, kh, kw])."""
    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: int
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    groups: int = 1
    relu: bool = False


@dataclass(frozen=True)
class Add:
    """y = clamp(round((a·b_a + b·b_b) / 2^c)): both inputs rescaled to the output scale."""
    a: str
    b: str
    output: str
    mult_a: int
    mult_b: int
    shift: int


@dataclass(frozen=True)
class GlobalAvgPool:
    """y = clamp(round_half_up(Σ_hw x · m / 2^c)) over H, W → [N, C] (m/2^c = s_in/(s_out·HW))."""
    input: str
    output: str
    mult: int
    shift: int


Op = Quantize | Dequantize | Linear | Conv2d | Add | GlobalAvgPool


@dataclass
class IntGraph:
    input: str
    output: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    ops: list[Op] = field(default_factory=list)


# --- reference executor ---------------------------------------------------------------------

def _conv_int(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
              groups: int) -> np.ndarray:
    """Exact int64 convolution (NCHW)."""
    n, cin, h, wd = x.shape
    cout, cpg, kh, kw = w.shape
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - kh) // stride[0] + 1
    ow = (wd + 2 * pw - kw) // stride[1] + 1
    out = np.zeros((n, cout, oh, ow), dtype=np.int64)
    opg = cout // groups
    for g in range(groups):
        xs = xp[:, g * cpg:(g + 1) * cpg]
        ws = w[g * opg:(g + 1) * opg].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i:i + stride[0] * oh:stride[0], j:j + stride[1] * ow:stride[1]]
                out[:, g * opg:(g + 1) * opg] += np.einsum("nchw,oc->nohw", patch,
                                                           ws[:, :, i, j])
    return out


def _requant_channels(acc: np.ndarray, mult: np.ndarray, shift: int, axis: int, relu: bool
                      ) -> np.ndarray:
    shape = [1] * acc.ndim
    shape[axis] = -1
    y = ref.shift_round(acc * mult.reshape(shape), shift)
    return np.clip(y, 0 if relu else Q8[0], Q8[1])


def run_reference(graph: IntGraph, x: np.ndarray) -> np.ndarray:
    env: dict[str, np.ndarray] = {graph.input: np.asarray(x, dtype=np.float32)}
    for op in graph.ops:
        if isinstance(op, Quantize):
            env[op.output] = ref.quantize(env[op.input], op.scale, *Q8)
        elif isinstance(op, Dequantize):
            # float32 int·scale, as DequantizeLinear computes it
            env[op.output] = env[op.input].astype(np.float32) * np.float32(op.scale)
        elif isinstance(op, Linear):
            acc = env[op.input].astype(np.int64) @ op.weight.astype(np.int64).T + op.bias
            if np.abs(acc).max(initial=0) >= 2**31:
                raise OverflowError(f"{op.output}: int32 accumulator overflow")
            env[op.output] = _requant_channels(acc, op.mult, op.shift, -1, op.relu)
        elif isinstance(op, Conv2d):
            acc = _conv_int(env[op.input].astype(np.int64), op.weight, op.stride, op.padding,
                            op.groups) + op.bias.reshape(1, -1, 1, 1)
            if np.abs(acc).max(initial=0) >= 2**31:
                raise OverflowError(f"{op.output}: int32 accumulator overflow")
            env[op.output] = _requant_channels(acc, op.mult, op.shift, 1, op.relu)
        elif isinstance(op, Add):
            acc = env[op.a] * op.mult_a + env[op.b] * op.mult_b
            env[op.output] = np.clip(ref.shift_round(acc, op.shift), *Q8)
        elif isinstance(op, GlobalAvgPool):
            total = env[op.input].astype(np.int64).sum(axis=(2, 3))
            env[op.output] = np.clip(ref.shift_round(total * op.mult, op.shift), *Q8)
        else:  # pragma: no cover - the Op union is closed
            raise TypeError(f"unknown op {op!r}")
    return env[graph.output]


# --- ONNX emitter -----------------------------------------------------------------------------

def to_onnx(graph: IntGraph, opset: int = 17) -> Any:
    from onnx import TensorProto, helper

    from edgekit.intonly.onnx_ops import GraphBuilder

    g = GraphBuilder()
    names: dict[str, str] = {graph.input: graph.input}
    int64 = TensorProto.INT64

    def as_int8(t: str) -> str:
        clipped = g.op("Clip", [t, g.const(Q8[0]), g.const(Q8[1])], "clip")
        return g.op("Cast", [clipped], "to_int8", to=TensorProto.INT8)

    def requant(acc64: str, mult: np.ndarray, shift: int, axis_shape: list[int], relu: bool
                ) -> str:
        m = g.const(np.asarray(mult, dtype=np.int64).reshape(axis_shape))
        y = g.shift_round(g.op("Mul", [acc64, m], "mul_m"), shift)
        lo = 0 if relu else Q8[0]
        clipped = g.op("Clip", [y, g.const(lo), g.const(Q8[1])], "clip")
        return g.op("Cast", [clipped], "to_int8", to=TensorProto.INT8)

    for op in graph.ops:
        if isinstance(op, Quantize):
            names[op.output] = g.op("QuantizeLinear", [
                names[op.input], g.const(np.float32(op.scale), np.float32),
                g.const(np.int8(0), np.int8)], "quantize")
        elif isinstance(op, Dequantize):
            src = g.op("Cast", [names[op.input]], "to_int32", to=TensorProto.INT32)
            names[op.output] = g.op("DequantizeLinear", [
                src, g.const(np.float32(op.scale), np.float32),
                g.const(np.int32(0), np.int32)], "dequantize")
        elif isinstance(op, Linear):
            wt = g.const(np.ascontiguousarray(op.weight.T).astype(np.int8), np.int8)
            acc = g.op("MatMulInteger", [names[op.input], wt], "matmul_int")
            acc = g.op("Cast", [acc], "to_int64", to=int64)
            acc = g.op("Add", [acc, g.const(op.bias.astype(np.int64))], "bias")
            names[op.output] = requant(acc, op.mult, op.shift, [-1], op.relu)
        elif isinstance(op, Conv2d):
            w = g.const(op.weight.astype(np.int8), np.int8)
            acc = g.op("ConvInteger", [names[op.input], w], "conv_int",
                       strides=list(op.stride), group=op.groups,
                       pads=[op.padding[0], op.padding[1], op.padding[0], op.padding[1]],
                       kernel_shape=list(op.weight.shape[2:]))
            acc = g.op("Cast", [acc], "to_int64", to=int64)
            acc = g.op("Add", [acc, g.const(op.bias.astype(np.int64).reshape(1, -1, 1, 1))],
                       "bias")
            names[op.output] = requant(acc, op.mult, op.shift, [1, -1, 1, 1], op.relu)
        elif isinstance(op, Add):
            a = g.op("Mul", [g.op("Cast", [names[op.a]], "to_int64", to=int64),
                             g.const(op.mult_a)], "mul_a")
            b = g.op("Mul", [g.op("Cast", [names[op.b]], "to_int64", to=int64),
                             g.const(op.mult_b)], "mul_b")
            names[op.output] = as_int8(g.shift_round(g.op("Add", [a, b], "add"), op.shift))
        elif isinstance(op, GlobalAvgPool):
            x64 = g.op("Cast", [names[op.input]], "to_int64", to=int64)
            total = g.op("ReduceSum", [x64, g.const(np.array([2, 3]))], "sum_hw", keepdims=0)
            names[op.output] = as_int8(g.shift_round(
                g.op("Mul", [total, g.const(op.mult)], "mul_m"), op.shift))
        else:  # pragma: no cover
            raise TypeError(f"unknown op {op!r}")
    out_name = names[graph.output]
    onnx_graph = g.graph(
        [helper.make_tensor_value_info(graph.input, TensorProto.FLOAT, list(graph.input_shape))],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT,
                                       list(graph.output_shape))])
    return helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=9, producer_name="edgekit-intonly")


# --- the integer-only property ------------------------------------------------------------------

FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def float_violations(model: Any) -> list[str]:
    """Names of float tensors other than the graph input → QuantizeLinear entry and the
    DequantizeLinear exit → graph output (and those two nodes' scale constants)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in
             [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:  # constants produced by Constant nodes
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.t is not None and a.t.data_type:
                    types[n.output[0]] = a.t.data_type
    allowed = {v.name for v in g.input} | {v.name for v in g.output}
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            allowed.update(n.input[:2])
        elif n.op_type == "DequantizeLinear":
            allowed.update([n.input[1], *n.output])
    bad = []
    for n in g.node:
        for t in [*n.input, *n.output]:
            if t and types.get(t) in FLOAT_TYPES and t not in allowed:
                bad.append(f"{t} ({n.op_type} {n.name})")
            elif t and t not in types and t not in allowed:
                bad.append(f"{t} ({n.op_type} {n.name}: dtype unknown)")
    return sorted(set(bad))
