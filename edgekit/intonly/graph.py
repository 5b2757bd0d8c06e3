"""A small integer-only IR with two backends: the numpy reference and an ONNX emitter.

One `IntGraph` (a list of ops over named integer tensors) is built once from a calibrated model.
Every op carries both of its meanings side by side: `reference(env)` computes it with
`reference.py` (the definition), `emit(b, names)` writes standard ONNX integer ops
(MatMulInteger / ConvInteger → int64 arithmetic → Clip → Cast). Only the entry QuantizeLinear and
the exit DequantizeLinear touch float; tests compare the two backends bit for bit in
onnxruntime.

Tensors between ops are int8 (softmax probabilities uint8 in [0, 128]); accumulators int32;
arithmetic inside an op int64. Per-output-channel requantization uses per-channel multipliers
with one shared shift.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.intonly import reference as ref
from edgekit.intonly.onnx_ops import GraphBuilder

Q8 = (-128, 127)
Env = dict[str, np.ndarray]
Names = dict[str, str]


def channel_dyadic(ratios: np.ndarray | float, bits: int = 31) -> tuple[np.ndarray, int]:
    """Ratios ≈ b_k / 2^c with one shared shift c (the largest ratio sets it: b_k < 2^bits)."""
    ratios = np.asarray(ratios, dtype=np.float64).reshape(-1)
    if not (ratios > 0).all():
        raise ValueError("requantization ratios must be positive")
    _, e = math.frexp(float(ratios.max()))
    c = bits - e
    if not 0 <= c <= 62:
        raise ValueError(f"ratio range needs shift {c}, outside 0..62")
    b = np.round(ratios * 2.0**c).astype(np.int64)
    return np.maximum(b, 1), c


def _check_int32(acc: np.ndarray, where: str) -> None:
    if np.abs(acc).max(initial=0) >= 2**31:
        raise OverflowError(f"{where}: int32 accumulator overflow")


def _requant(acc: np.ndarray, mult: np.ndarray, shift: int, axis: int, lo: int = Q8[0],
             hi: int = Q8[1]) -> np.ndarray:
    shape = [1] * acc.ndim
    shape[axis] = -1
    return np.clip(ref.shift_round(acc * np.asarray(mult).reshape(shape), shift), lo, hi)


def _emit_requant(b: GraphBuilder, acc64: str, mult: np.ndarray, shift: int,
                  shape: list[int], lo: int = Q8[0], hi: int = Q8[1], to: str = "int8") -> str:
    from onnx import TensorProto

    m = b.const(np.asarray(mult, dtype=np.int64).reshape(shape))
    y = b.shift_round(b.op("Mul", [acc64, m], "mul_m"), shift)
    clipped = b.op("Clip", [y, b.const(lo), b.const(hi)], "clip")
    dtype = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}[to]
    return b.op("Cast", [clipped], f"to_{to}", to=dtype)


def _to64(b: GraphBuilder, name: str) -> str:
    from onnx import TensorProto

    return b.op("Cast", [name], "to_int64", to=TensorProto.INT64)


class IntOp(ABC):
    """An integer op: `reference` defines it, `emit` writes the same arithmetic as ONNX."""

    output: str

    @abstractmethod
    def reference(self, env: Env) -> np.ndarray: ...

    @abstractmethod
    def emit(self, b: GraphBuilder, names: Names) -> str: ...


@dataclass(frozen=True)
class Quantize(IntOp):
    """float input → int8: the one float→int step."""
    input: str
    output: str
    scale: float

    def reference(self, env: Env) -> np.ndarray:
        return ref.quantize(env[self.input], self.scale, *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        return b.op("QuantizeLinear", [names[self.input],
                                       b.const(np.float32(self.scale), np.float32),
                                       b.const(np.int8(0), np.int8)], "quantize")


@dataclass(frozen=True)
class Dequantize(IntOp):
    """int → float output: the one int→float step (float32 int·scale, as DequantizeLinear)."""
    input: str
    output: str
    scale: float

    def reference(self, env: Env) -> np.ndarray:
        return env[self.input].astype(np.float32) * np.float32(self.scale)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        from onnx import TensorProto

        src = b.op("Cast", [names[self.input]], "to_int32", to=TensorProto.INT32)
        return b.op("DequantizeLinear", [src, b.const(np.float32(self.scale), np.float32),
                                         b.const(np.int32(0), np.int32)], "dequantize")


@dataclass(frozen=True)
class Linear(IntOp):
    """y = clamp(round((x·Wᵀ + bias) · m / 2^c)); x int8 [..., in], W int8 [out, in], bias at
    scale s_x·s_w, (m, c) per output channel; relu clamps at 0."""
    input: str
    output: str
    weight: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: int
    relu: bool = False

    def reference(self, env: Env) -> np.ndarray:
        acc = env[self.input].astype(np.int64) @ self.weight.astype(np.int64).T + self.bias
        _check_int32(acc, self.output)
        return _requant(acc, self.mult, self.shift, -1, 0 if self.relu else Q8[0])

    def emit(self, b: GraphBuilder, names: Names) -> str:
        wt = b.const(np.ascontiguousarray(self.weight.T).astype(np.int8), np.int8)
        acc = _to64(b, b.op("MatMulInteger", [names[self.input], wt], "matmul_int"))
        acc = b.op("Add", [acc, b.const(self.bias.astype(np.int64))], "bias")
        return _emit_requant(b, acc, self.mult, self.shift, [-1], 0 if self.relu else Q8[0])


def _conv_int(x: np.ndarray, w: np.ndarray, stride: tuple[int, int], padding: tuple[int, int],
              groups: int) -> np.ndarray:
    """Exact int64 convolution (NCHW)."""
    n, _, h, wd = x.shape
    cout, cpg, kh, kw = w.shape
    ph, pw = padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - kh) // stride[0] + 1
    ow = (wd + 2 * pw - kw) // stride[1] + 1
    out = np.zeros((n, cout, oh, ow), dtype=np.int64)
    if groups == cout and cpg == 1:  # depthwise (and window sums): all channels at once
        wd64 = w[:, 0].astype(np.int64)
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, :, i:i + stride[0] * oh:stride[0], j:j + stride[1] * ow:stride[1]]
                out += patch * wd64[None, :, i, j, None, None]
        return out
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


@dataclass(frozen=True)
class Conv2d(IntOp):
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

    def reference(self, env: Env) -> np.ndarray:
        acc = _conv_int(env[self.input].astype(np.int64), self.weight, self.stride,
                        self.padding, self.groups) + self.bias.reshape(1, -1, 1, 1)
        _check_int32(acc, self.output)
        return _requant(acc, self.mult, self.shift, 1, 0 if self.relu else Q8[0])

    def emit(self, b: GraphBuilder, names: Names) -> str:
        w = b.const(self.weight.astype(np.int8), np.int8)
        ph, pw = self.padding
        acc = _to64(b, b.op("ConvInteger", [names[self.input], w], "conv_int",
                            strides=list(self.stride), group=self.groups,
                            pads=[ph, pw, ph, pw], kernel_shape=list(self.weight.shape[2:])))
        acc = b.op("Add", [acc, b.const(self.bias.astype(np.int64).reshape(1, -1, 1, 1))],
                   "bias")
        return _emit_requant(b, acc, self.mult, self.shift, [1, -1, 1, 1],
                             0 if self.relu else Q8[0])


@dataclass(frozen=True)
class MatMul(IntOp):
    """Activation × activation (attention): y = clamp(round((a @ b) · m / 2^c)); a int8 or
    uint8 (softmax), b int8."""
    a: str
    b: str
    output: str
    mult: int
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        acc = np.matmul(env[self.a].astype(np.int64), env[self.b].astype(np.int64))
        _check_int32(acc, self.output)
        return np.clip(ref.shift_round(acc * self.mult, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        acc = _to64(b, b.op("MatMulInteger", [names[self.a], names[self.b]], "matmul_int"))
        return _emit_requant(b, acc, np.array(self.mult), self.shift, [])


@dataclass(frozen=True)
class Add(IntOp):
    """Residual add: y = clamp(round((a·m_a + b·m_b) / 2^c)), both rescaled to the output."""
    a: str
    b: str
    output: str
    mult_a: int
    mult_b: int
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        acc = env[self.a].astype(np.int64) * self.mult_a + env[self.b].astype(np.int64) * \
            self.mult_b
        return np.clip(ref.shift_round(acc, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        a = b.op("Mul", [_to64(b, names[self.a]), b.const(self.mult_a)], "mul_a")
        bb = b.op("Mul", [_to64(b, names[self.b]), b.const(self.mult_b)], "mul_b")
        return _emit_requant(b, b.op("Add", [a, bb], "add"), np.array(1), self.shift, [])


def _emit_shift_exp(b: GraphBuilder, x: str, scale: float, n: int) -> tuple[str, int]:
    """ONNX of reference.shift_exp for int64 x ≤ 0; returns (exp name, x0)."""
    from onnx import TensorProto

    x = b.op("Sub", [b.op("Add", [x, b.shift_right(x, 1)]), b.shift_right(x, 4)], "log2e")
    x0 = ref.shift_exp_x0(scale)
    x = b.op("Max", [x, b.const(n * x0)], "clamp_n")
    q = b.op("Div", [b.op("Neg", [x]), b.const(-x0)], "q")  # both ≥ 0: trunc = floor
    r = b.op("Sub", [x, b.op("Mul", [q, b.const(x0)])], "r")
    base = b.op("Cast", [b.op("Sub", [r, b.const(2 * x0)], "base")], "to_u64",
                to=TensorProto.UINT64)  # r − 2·x0 > 0
    amount = b.op("Cast", [b.op("Sub", [b.const(n), q], "n_q")], "to_u64", to=TensorProto.UINT64)
    shifted = b.op("BitShift", [base, amount], "shl", direction="LEFT")
    exp = b.op("Div", [_to64(b, shifted), b.const(2)], "half")  # ≥ 0
    return exp, x0


@dataclass(frozen=True)
class Shiftmax(IntOp):
    """I-ViT Shiftmax over the last axis (reference.shiftmax); input int8 at `scale`, output
    uint8 probabilities in [0, 2^(out_bits−1)] at scale 2^(1−out_bits)."""
    input: str
    output: str
    scale: float
    n: int = 15
    out_bits: int = 8

    def reference(self, env: Env) -> np.ndarray:
        out, _ = ref.shiftmax(env[self.input], self.scale, -1, self.n, self.out_bits)
        return out

    def emit(self, b: GraphBuilder, names: Names) -> str:
        from onnx import TensorProto

        x = _to64(b, names[self.input])
        x = b.op("Sub", [x, b.op("ReduceMax", [x], "rowmax", axes=[-1], keepdims=1)], "x_m")
        exp, _ = _emit_shift_exp(b, x, self.scale, self.n)
        total = b.op("Min", [b.op("ReduceSum", [exp, b.const(np.array([-1]))], "sum",
                                  keepdims=1), b.const(ref.INT32_MAX)], "sat")
        factor = b.op("Div", [b.const(ref.INT32_MAX), total], "factor")
        half = b.const(np.array(1 << (31 - self.out_bits), dtype=np.int64))
        out = b.op("Div", [b.op("Add", [b.op("Mul", [exp, factor]), half], "rounded"),
                           b.const(1 << (32 - self.out_bits))], "norm")
        return b.op("Cast", [out], "to_uint8", to=TensorProto.UINT8)


@dataclass(frozen=True)
class ShiftGelu(IntOp):
    """x · σ(α·x) via reference.shift_gelu (σ from shift-exp of −|z|) — GELU with α = 1.702,
    SiLU with α = 1 — then requantized to int8: y = clamp(round(x·σ · m / 2^c))."""
    input: str
    output: str
    scale: float
    mult: int
    shift: int
    n: int = 15
    sig_bits: int = 8
    alpha: float = ref.GELU_ALPHA

    def reference(self, env: Env) -> np.ndarray:
        y, _ = ref.shift_gelu(env[self.input], self.scale, self.n, self.sig_bits, self.alpha)
        return np.clip(ref.shift_round(y * self.mult, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        x = _to64(b, names[self.input])
        sig_scale = self.scale * self.alpha
        e, x0 = _emit_shift_exp(b, b.op("Neg", [b.op("Abs", [x])]), sig_scale, self.n)
        one = -x0 << self.n
        factor = b.op("Div", [b.const(ref.INT32_MAX), b.op("Add", [e, b.const(one)])],
                      "factor")
        pick = b.op("Where", [b.op("GreaterOrEqual", [x, b.const(0)]), b.const(one), e],
                    "num")
        sig = b.op("Div", [b.op("Mul", [pick, factor]), b.const(1 << (32 - self.sig_bits))],
                   "sigma")
        return _emit_requant(b, b.op("Mul", [x, sig], "x_sigma"), np.array(self.mult),
                             self.shift, [])


@dataclass(frozen=True)
class LayerNorm(IntOp):
    """I-LayerNorm over the last axis (reference.i_layernorm_core), then the affine γ, β and
    requantization in one step: y = clamp(round((y'·g_c + β_c) / 2^c)), g_c < 2^24 so that
    y'·g_c fits int64."""
    input: str
    output: str
    gamma_mult: np.ndarray
    beta: np.ndarray
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        y, _ = ref.i_layernorm_core(env[self.input])
        acc = y * self.gamma_mult.reshape(1, -1) + self.beta.reshape(1, -1)
        return np.clip(ref.shift_round(acc, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        x = _to64(b, names[self.input])
        c = int(self.gamma_mult.size)
        total = b.op("ReduceSum", [x, b.const(np.array([-1]))], "sum", keepdims=1)
        mean = b.floor_div(b.op("Add", [b.op("Mul", [total, b.const(2)]), b.const(c)]), 2 * c)
        y = b.op("Sub", [x, mean], "centered")
        var = b.op("ReduceSum", [b.op("Mul", [y, y], "sq"), b.const(np.array([-1]))], "var",
                   keepdims=1)
        k = b.op("Add", [b.op("Mul", [var, b.const(0)]), b.const(2**16)], "k0")
        for _ in range(16):  # reference.isqrt_newton: v ≥ 0, k ≥ 1 → trunc = floor
            k = b.op("Div", [b.op("Add", [k, b.op("Div", [var, k])]), b.const(2)], "newton")
            k = b.op("Max", [k, b.const(1)], "k_pos")
        factor = b.op("Div", [b.const(ref.INT32_MAX), k], "factor")
        yn = b.floor_div(b.op("Mul", [y, factor]), 2)
        acc = b.op("Add", [b.op("Mul", [yn, b.const(self.gamma_mult.astype(np.int64))]),
                           b.const(self.beta.astype(np.int64))], "affine")
        return _emit_requant(b, acc, np.array(1), self.shift, [])


@dataclass(frozen=True)
class Layout(IntOp):
    """Reshape and/or transpose (no arithmetic)."""
    input: str
    output: str
    shape: tuple[int, ...] | None = None
    perm: tuple[int, ...] | None = None

    def reference(self, env: Env) -> np.ndarray:
        x = env[self.input]
        if self.shape is not None:
            x = x.reshape(self.shape)
        return np.transpose(x, self.perm) if self.perm is not None else x

    def emit(self, b: GraphBuilder, names: Names) -> str:
        x = names[self.input]
        if self.shape is not None:
            x = b.op("Reshape", [x, b.const(np.array(self.shape))], "reshape")
        if self.perm is not None:
            x = b.op("Transpose", [x], "transpose", perm=list(self.perm))
        return x


@dataclass(frozen=True)
class Hardswish(IntOp):
    """x·relu6(x + 3)/6 with integers: t = clamp(x + r3, 0, r6) (r3 = round(3/s), r6 =
    round(6/s)); y = clamp(round(x·t · m / 2^c)), m/2^c = s² / (6·s_out)."""
    input: str
    output: str
    r3: int
    r6: int
    mult: int
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        x = env[self.input].astype(np.int64)
        t = np.clip(x + self.r3, 0, self.r6)
        return np.clip(ref.shift_round(x * t * self.mult, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        x = _to64(b, names[self.input])
        t = b.op("Clip", [b.op("Add", [x, b.const(self.r3)]), b.const(0), b.const(self.r6)],
                 "relu6")
        return _emit_requant(b, b.op("Mul", [x, t], "x_t"), np.array(self.mult), self.shift,
                             [])


@dataclass(frozen=True)
class AddConst(IntOp):
    """y = clamp(round((a·m_a + K) / 2^c)); K = round(const · 2^c / s_out) (e.g. LeViT's baked
    attention biases), broadcast against a."""
    input: str
    output: str
    const: np.ndarray
    mult: int
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        acc = env[self.input].astype(np.int64) * self.mult + self.const
        return np.clip(ref.shift_round(acc, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        acc = b.op("Add", [b.op("Mul", [_to64(b, names[self.input]), b.const(self.mult)]),
                           b.const(self.const.astype(np.int64))], "add_const")
        return _emit_requant(b, acc, np.array(1), self.shift, [])


@dataclass(frozen=True)
class Slice(IntOp):
    """x[start:end:step] along one axis (no arithmetic)."""
    input: str
    output: str
    axis: int
    start: int
    end: int
    step: int = 1

    def reference(self, env: Env) -> np.ndarray:
        index = [slice(None)] * env[self.input].ndim
        index[self.axis] = slice(self.start, self.end, self.step)
        return env[self.input][tuple(index)]

    def emit(self, b: GraphBuilder, names: Names) -> str:
        return b.op("Slice", [names[self.input], b.const(np.array([self.start])),
                              b.const(np.array([self.end])), b.const(np.array([self.axis])),
                              b.const(np.array([self.step]))], "slice")


@dataclass(frozen=True)
class Concat(IntOp):
    """Concatenate along `axis` after rescaling every input to the output scale:
    y = concat_i(clamp(round(x_i · m_i / 2^c)))."""
    inputs: tuple[str, ...]
    output: str
    axis: int
    mults: tuple[int, ...]
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        return np.concatenate([
            np.clip(ref.shift_round(env[i].astype(np.int64) * m, self.shift), *Q8)
            for i, m in zip(self.inputs, self.mults, strict=True)], axis=self.axis)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        parts = [_emit_requant(b, _to64(b, names[i]), np.array(m), self.shift, [])
                 for i, m in zip(self.inputs, self.mults, strict=True)]
        return b.op("Concat", parts, "concat", axis=self.axis)


@dataclass(frozen=True)
class Mean(IntOp):
    """Mean over axes: clamp(round(Σ x · m / 2^c)), m/2^c = s_in / (s_out · count)."""
    input: str
    output: str
    axes: tuple[int, ...]
    keepdims: bool
    mult: int
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        total = env[self.input].astype(np.int64).sum(axis=self.axes, keepdims=self.keepdims)
        return np.clip(ref.shift_round(total * self.mult, self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        total = b.op("ReduceSum", [_to64(b, names[self.input]), b.const(np.array(self.axes))],
                     "sum", keepdims=int(self.keepdims))
        return _emit_requant(b, total, np.array(self.mult), self.shift, [])


@dataclass(frozen=True)
class Relu(IntOp):
    """max(x, 0), same scale."""
    input: str
    output: str

    def reference(self, env: Env) -> np.ndarray:
        return np.maximum(env[self.input], 0)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        from onnx import TensorProto

        y = b.op("Max", [_to64(b, names[self.input]), b.const(0)], "relu")
        return b.op("Cast", [y], "to_int8", to=TensorProto.INT8)


@dataclass(frozen=True)
class AvgPool(IntOp):
    """k×k average pool, zero padding, count_include_pad=False (EfficientFormer's pool mixer):
    window sums (an all-ones depthwise ConvInteger in ONNX) times a per-position multiplier
    m[h, w] / 2^c = s_in / (s_out · count[h, w])."""
    input: str
    output: str
    kernel: int
    stride: int
    padding: int
    channels: int
    mult: np.ndarray  # [H_out, W_out]
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        x = env[self.input].astype(np.int64)
        ones = np.ones((self.channels, 1, self.kernel, self.kernel), dtype=np.int8)
        total = _conv_int(x, ones, (self.stride, self.stride), (self.padding, self.padding),
                          self.channels)
        return np.clip(ref.shift_round(total * self.mult[None, None], self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        ones = b.const(np.ones((self.channels, 1, self.kernel, self.kernel), np.int8), np.int8)
        p = self.padding
        total = _to64(b, b.op("ConvInteger", [names[self.input], ones], "window_sum",
                              strides=[self.stride] * 2, group=self.channels,
                              pads=[p, p, p, p], kernel_shape=[self.kernel] * 2))
        return _emit_requant(b, total, self.mult[None, None].astype(np.int64), self.shift,
                             [1, 1, *self.mult.shape])


@dataclass(frozen=True)
class MulConst(IntOp):
    """x · γ for a constant tensor γ (e.g. EfficientFormer's LayerScale after the pool mixer):
    y = clamp(round(x · M / 2^c)), M = round(γ · s_x / s_out · 2^c) (signed, broadcast)."""
    input: str
    output: str
    mult: np.ndarray
    shift: int

    def reference(self, env: Env) -> np.ndarray:
        return np.clip(ref.shift_round(env[self.input].astype(np.int64) * self.mult,
                                       self.shift), *Q8)

    def emit(self, b: GraphBuilder, names: Names) -> str:
        return _emit_requant(b, _to64(b, names[self.input]), self.mult.astype(np.int64),
                             self.shift, list(self.mult.shape) or [])


def GlobalAvgPool(input: str, output: str, mult: int, shift: int) -> Mean:  # noqa: N802
    """[N, C, H, W] → [N, C]: the Mean over H, W (m/2^c = s_in / (s_out · H·W))."""
    return Mean(input, output, (2, 3), False, mult, shift)


@dataclass
class IntGraph:
    input: str
    output: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    ops: list[IntOp] = field(default_factory=list)


def run_reference(graph: IntGraph, x: np.ndarray, kernels: bool = False) -> np.ndarray:
    """The graph on x by the reference; kernels=True runs the ops the C kernels cover through
    them (edgekit.kernels, bit-exact with the reference and much faster)."""
    env: Env = {graph.input: np.asarray(x, dtype=np.float32)}
    fast: Any = None
    if kernels:
        from edgekit.kernels import intops

        fast = intops.run
    for op in graph.ops:
        out = fast(op, env) if fast is not None else None
        env[op.output] = op.reference(env) if out is None else out
    return env[graph.output]


def to_onnx(graph: IntGraph, opset: int = 17) -> Any:
    from onnx import TensorProto, helper

    b = GraphBuilder()
    names: Names = {graph.input: graph.input}
    for op in graph.ops:
        names[op.output] = op.emit(b, names)
    onnx_graph = b.graph(
        [helper.make_tensor_value_info(graph.input, TensorProto.FLOAT, list(graph.input_shape))],
        [helper.make_tensor_value_info(names[graph.output], TensorProto.FLOAT,
                                       list(graph.output_shape))])
    return helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=9, producer_name="edgekit-intonly")


# --- the integer-only property ------------------------------------------------------------------

FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16


def float_violations(model: Any) -> list[str]:
    """Float tensors other than graph input → QuantizeLinear (entry) and DequantizeLinear (exit)
    → graph output, and those two nodes' scale constants; names each offender and its node."""
    import onnx

    g = onnx.shape_inference.infer_shapes(model).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.output, *g.value_info]}
    types.update({t.name: t.data_type for t in g.initializer})
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.t.data_type:
                    types[n.output[0]] = a.t.data_type
    allowed = {v.name for v in g.input} | {v.name for v in g.output}
    for n in g.node:
        if n.op_type == "QuantizeLinear":
            allowed.update(n.input[:2])
        elif n.op_type == "DequantizeLinear":
            allowed.update([n.input[1], *n.output])
    bad = set()
    for n in g.node:
        for t in [*n.input, *n.output]:
            if not t or t in allowed:
                continue
            if t not in types:
                bad.add(f"{t} ({n.op_type} {n.name}: dtype unknown)")
            elif types[t] in FLOAT_TYPES:
                bad.add(f"{t} ({n.op_type} {n.name})")
    return sorted(bad)
