"""Golden vectors for the C kernels, computed by the integer-only IR's reference semantics.

Every expected output comes from an `edgekit.intonly.graph` op's `reference()` (which is
`reference.py`, the specification), on inputs chosen to hit the edges: saturation both ways,
negative values, exact rounding ties, all-equal softmax rows, odd sizes and channel counts that
are not multiples of 16 (the NEON step), alongside LeViT-like shapes.

    python -m edgekit.kernels.golden OUT.bin     # the file kernels_arm/test/ek_test reads
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.intonly import graph as ig
from edgekit.intonly import reference as ref
from edgekit.intonly.convert import shiftmax_precision
from edgekit.kernels import shift_exp_x0

MAGIC = b"EKGOLD01"
DTYPE_CODES = {np.dtype(np.int8): 1, np.dtype(np.uint8): 2, np.dtype(np.int32): 3,
               np.dtype(np.int64): 4}


@dataclass(frozen=True)
class Case:
    op: str
    arrays: dict[str, np.ndarray]  # kernel arguments (scalars as int64[1]) and the expected "y"
    note: str = ""


def _ints(**scalars: int) -> dict[str, np.ndarray]:
    return {k: np.array([int(v)], dtype=np.int64) for k, v in scalars.items()}


def _s8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64)


def gemm(rng: np.random.Generator, m: int, k: int, n: int, *, relu: bool = False,
         mult: np.ndarray | None = None, shift: int | None = None, note: str = "") -> Case:
    a, w = _s8(rng, m, k), _s8(rng, n, k)
    bias = rng.integers(-2**14, 2**14, size=n)
    if mult is None or shift is None:  # a realistic per-channel ratio s_a·s_w/s_y
        mult, shift = ig.channel_dyadic(rng.uniform(2e-5, 2e-4, size=n))
    y = ig.Linear("x", "y", w, bias, mult, shift, relu).reference({"x": a})
    return Case("s8_gemm_requant", {
        **_ints(m=m, k=k, n=n, shift=shift, lo=0 if relu else -128),
        "a": a.astype(np.int8), "w": w.astype(np.int8), "bias": bias.astype(np.int32),
        "mult": np.asarray(mult).astype(np.int32), "y": y.astype(np.int8)}, note)


def dwconv(rng: np.random.Generator, c: int, h: int, w_in: int, stride: int, pad: int, *,
           relu: bool = False, note: str = "") -> Case:
    x, w = _s8(rng, 1, c, h, w_in), _s8(rng, c, 1, 3, 3)
    bias = rng.integers(-2**12, 2**12, size=c)
    mult, shift = ig.channel_dyadic(rng.uniform(5e-4, 4e-3, size=c))
    y = ig.Conv2d("x", "y", w, bias, mult, shift, (stride, stride), (pad, pad), c,
                  relu).reference({"x": x})
    return Case("s8_dwconv3x3_requant", {
        **_ints(c=c, h=h, w_in=w_in, stride=stride, pad=pad, shift=shift, lo=0 if relu else -128),
        "x": x.astype(np.int8), "w": w.reshape(c, 9).astype(np.int8),
        "bias": bias.astype(np.int32), "mult": mult.astype(np.int32), "y": y.astype(np.int8)},
        note)


def shiftmax(x: np.ndarray, scale: float, note: str = "", n: int = 15) -> Case:
    rows, length = x.shape
    y = ig.Shiftmax("x", "y", scale, n).reference({"x": x})
    return Case("s8_shiftmax", {
        **_ints(rows=rows, len=length, x0=shift_exp_x0(scale), n=n, out_bits=8),
        "x": x.astype(np.int8), "y": y.astype(np.uint8)}, note)


def shiftgelu(x: np.ndarray, scale: float, ratio: float, alpha: float = ref.GELU_ALPHA,
              note: str = "") -> Case:
    mult, shift = ref.dyadic(ratio)
    y = ig.ShiftGelu("x", "y", scale, mult, shift, alpha=alpha).reference({"x": x})
    return Case("s8_shiftgelu", {
        **_ints(count=x.size, x0=shift_exp_x0(scale * alpha), n=15, sig_bits=8, mult=mult,
                shift=shift), "x": x.astype(np.int8), "y": y.astype(np.int8)}, note)


def layernorm(x: np.ndarray, rng: np.random.Generator, note: str = "") -> Case:
    rows, c = x.shape
    gamma, shift = ig.channel_dyadic(rng.uniform(0.2, 2.0, size=c) * 2e-3, bits=24)
    beta = rng.integers(-2**(shift - 2), 2**(shift - 2), size=c)
    y = ig.LayerNorm("x", "y", gamma, beta, shift).reference({"x": x})
    return Case("s8_ilayernorm", {
        **_ints(rows=rows, c=c, shift=shift), "x": x.astype(np.int8),
        "gamma": gamma.astype(np.int32), "beta": beta.astype(np.int64), "y": y.astype(np.int8)},
        note)


def avgpool(rng: np.random.Generator, c: int, h: int, w_in: int, kernel: int, stride: int,
            pad: int, note: str = "") -> Case:
    x = _s8(rng, 1, c, h, w_in)
    ones = np.ones((1, 1, h, w_in), dtype=np.int64)
    count = ig._conv_int(ones, np.ones((1, 1, kernel, kernel), np.int8), (stride, stride),
                         (pad, pad), 1)[0, 0]
    mult, shift = ig.channel_dyadic((0.9 / count).reshape(-1))
    mult = mult.reshape(count.shape)
    y = ig.AvgPool("x", "y", kernel, stride, pad, c, mult, shift).reference({"x": x})
    return Case("s8_avgpool_requant", {
        **_ints(c=c, h=h, w_in=w_in, kernel=kernel, stride=stride, pad=pad, shift=shift),
        "x": x.astype(np.int8), "mult": mult.reshape(-1).astype(np.int32),
        "y": y.astype(np.int8)}, note)


def add(a: np.ndarray, b: np.ndarray, mult_a: int, mult_b: int, shift: int, note: str = ""
        ) -> Case:
    y = ig.Add("a", "b", "y", mult_a, mult_b, shift).reference({"a": a, "b": b})
    return Case("s8_add_requant", {
        **_ints(count=a.size, mult_a=mult_a, mult_b=mult_b, shift=shift),
        "a": a.astype(np.int8), "b": b.astype(np.int8), "y": y.astype(np.int8)}, note)


def hardswish(x: np.ndarray, scale: float, out_scale: float, note: str = "") -> Case:
    r3, r6 = int(round(3.0 / scale)), int(round(6.0 / scale))
    mult, shift = ref.dyadic(scale * scale / (6.0 * out_scale))
    y = ig.Hardswish("x", "y", r3, r6, mult, shift).reference({"x": x})
    return Case("s8_hardswish", {
        **_ints(count=x.size, r3=r3, r6=r6, mult=mult, shift=shift), "x": x.astype(np.int8),
        "y": y.astype(np.int8)}, note)


def addconst(x: np.ndarray, mult: int, c: np.ndarray, shift: int, note: str = "") -> Case:
    y = ig.AddConst("x", "y", c, mult, shift).reference({"x": x})
    return Case("s8_addconst_requant", {
        **_ints(count=x.size, mult=mult, shift=shift), "x": x.astype(np.int8),
        "c": c.astype(np.int64), "y": y.astype(np.int8)}, note)


def mulconst(x: np.ndarray, m: np.ndarray, shift: int, note: str = "") -> Case:
    y = ig.MulConst("x", "y", m, shift).reference({"x": x})
    return Case("s8_mulconst_requant", {
        **_ints(count=x.size, shift=shift), "x": x.astype(np.int8), "m": m.astype(np.int32),
        "y": y.astype(np.int8)}, note)


def matmul(a: np.ndarray, b: np.ndarray, mult: int, shift: int, note: str = "") -> Case:
    """graph.MatMul of a [m, k] (int8, or uint8 softmax probabilities) by b [k, n]; the kernel
    takes bᵀ [n, k]."""
    y = ig.MatMul("a", "b", "y", mult, shift).reference({"a": a, "b": b})
    (m, k), n = a.shape, b.shape[1]
    unsigned = bool(a.min(initial=0) >= 0 and a.max(initial=0) > 127) or a.dtype == np.uint8
    return Case("s8_matmul_requant", {
        **_ints(m=m, k=k, n=n, a_unsigned=int(unsigned), shift=shift),
        "a": a.astype(np.uint8 if unsigned else np.int8), "bt": b.T.astype(np.int8),
        "mult": np.full(n, mult, dtype=np.int32), "y": y.astype(np.int8)}, note)


def conv2d(rng: np.random.Generator, c: int, h: int, w_in: int, o: int, kernel: tuple[int, int],
           stride: tuple[int, int], pad: tuple[int, int], groups: int = 1, *,
           relu: bool = False, x: np.ndarray | None = None, note: str = "") -> Case:
    kh, kw = kernel
    x = _s8(rng, 1, c, h, w_in) if x is None else x
    w = _s8(rng, o, c // groups, kh, kw)
    bias = rng.integers(-2**12, 2**12, size=o)
    mult, shift = ig.channel_dyadic(rng.uniform(2e-4, 2e-3, size=o))
    y = ig.Conv2d("x", "y", w, bias, mult, shift, stride, pad, groups, relu).reference({"x": x})
    return Case("s8_conv2d_requant", {
        **_ints(c=c, h=h, w_in=w_in, o=o, groups=groups, kh=kh, kw=kw, sh=stride[0],
                sw=stride[1], ph=pad[0], pw=pad[1], shift=shift, lo=0 if relu else -128),
        "x": x.astype(np.int8), "w": w.astype(np.int8), "bias": bias.astype(np.int32),
        "mult": mult.astype(np.int32), "y": y.astype(np.int8)}, note)


def mean(x: np.ndarray, axes: tuple[int, ...], mult: int, shift: int, note: str = "") -> Case:
    """graph.Mean over a contiguous block of axes: the kernel's [outer][count][inner]."""
    y = ig.Mean("x", "y", axes, False, mult, shift).reference({"x": x})
    outer = int(np.prod(x.shape[:axes[0]]))
    count = int(np.prod([x.shape[a] for a in axes]))
    return Case("s8_mean_requant", {
        **_ints(outer=outer, count=count, inner=x.size // (outer * count), mult=mult,
                shift=shift), "x": x.astype(np.int8), "y": y.astype(np.int8)}, note)


CANARY = 0xA5  # ek_test fills outputs with it: bytes a kernel must not write keep it


def transpose(rng: np.random.Generator, rows: int, cols: int, x_stride: int, y_stride: int,
              note: str = "") -> Case:
    """graph.Layout's transpose of a rows × cols byte matrix read with stride x_stride, written
    with stride y_stride (the bytes between stay untouched)."""
    x = rng.integers(0, 256, size=(rows, x_stride), dtype=np.int64)
    t = ig.Layout("x", "y", perm=(1, 0)).reference({"x": x[:, :cols]})
    y = np.full((cols, y_stride), CANARY, dtype=np.int64)
    y[:, :rows] = t
    return Case("x8_transpose", {
        **_ints(rows=rows, cols=cols, x_stride=x_stride, y_stride=y_stride),
        "x": x.astype(np.uint8), "y": y.reshape(-1)[:(cols - 1) * y_stride + rows]
        .astype(np.uint8)}, note)


def lut(x: np.ndarray, table: np.ndarray, note: str = "") -> Case:
    return Case("x8_lut", {**_ints(count=x.size), "x": x.astype(np.uint8),
                           "table": table.astype(np.uint8),
                           "y": table[x].astype(np.uint8)}, note)


def cases(seed: int = 0) -> Iterator[Case]:
    rng = np.random.default_rng(seed)
    every_s8 = np.arange(-128, 128, dtype=np.int64)
    # GEMM: LeViT-like, odd sizes, ReLU, saturation both ways, exact ties (mult 1, shift 1:
    # every odd accumulator is a .5 tie, positive and negative)
    yield gemm(rng, 16, 128, 64, note="LeViT-like")
    for m, k, n in [(1, 1, 1), (5, 19, 7), (3, 16, 5), (7, 33, 9), (4, 48, 4), (9, 200, 13),
                    (17, 72, 6), (2, 8200, 3)]:  # 8-row blocks + tail; k past i8mm's panel
        yield gemm(rng, m, k, n, note="odd sizes")
    # the 4x16c4 dot kernel: 16-column panels with an edge panel, k tails inside the last 16,
    # one exact 16×16 panel, k past its panel limit (4096)
    for m, k, n in [(6, 37, 35), (9, 16, 17), (4, 64, 16), (3, 4, 33), (5, 4099, 18)]:
        yield gemm(rng, m, k, n, note="16-column panels")
    yield gemm(rng, 6, 40, 10, relu=True, note="ReLU")
    yield gemm(rng, 5, 64, 6, mult=np.full(6, 1), shift=1, note="ties")
    yield gemm(rng, 3, 17, 5, mult=np.full(5, 3), shift=2, note="ties, mult 3")
    yield gemm(rng, 5, 66, 12, mult=np.full(12, 1), shift=1, note="ties, vector requant")
    # the 32-bit requantization (shift ≥ 32): exact ties (acc·2^30 / 2^32 = acc / 4), negative
    # multipliers, and INT32_MIN, where SQDMULH would saturate (the int64 path instead)
    yield gemm(rng, 5, 64, 20, mult=np.full(20, 2**30), shift=32, note="ties at shift 32")
    yield gemm(rng, 6, 48, 17, mult=np.full(17, -(2**31) + 1), shift=44, note="mult < 0")
    yield gemm(rng, 4, 32, 16, mult=np.full(16, -(2**31)), shift=40, note="mult INT32_MIN")
    yield gemm(rng, 4, 32, 8, mult=np.full(8, 2**30), shift=20, note="saturation")
    yield gemm(rng, 4, 20, 8, mult=np.full(8, 1), shift=0, note="shift 0")
    # depthwise 3×3: stride 1/2, pad 0/1, widths around the 8-wide NEON step
    for c, h, w, s, p in [(3, 14, 14, 1, 1), (2, 7, 9, 2, 1), (5, 17, 31, 1, 1),
                          (2, 16, 40, 2, 1), (3, 5, 5, 1, 0), (2, 11, 37, 2, 0), (1, 3, 3, 1, 1),
                          (2, 1, 1, 1, 1), (1, 3, 4100, 1, 1)]:  # wider than NEON's line buffer
        yield dwconv(rng, c, h, w, s, p, note=f"{h}x{w} s{s} p{p}")
    yield dwconv(rng, 4, 12, 20, 1, 1, relu=True, note="ReLU")
    # Shiftmax: attention-like rows, all-equal rows, extremes, odd lengths, several scales
    yield shiftmax(_s8(rng, 8, 196), 0.08, "LeViT-like rows of 196")
    yield shiftmax(np.full((3, 49), 7, dtype=np.int64), 0.05, "all-equal rows")
    yield shiftmax(np.tile([-128, 127], (2, 17))[:, :33], 0.1, "extremes, odd length")
    for length, scale in [(1, 0.1), (15, 0.02), (16, 0.3), (17, 0.004), (100, 0.9)]:
        yield shiftmax(_s8(rng, 3, length), scale, f"len {length}, scale {scale}")
    # fine scales: fewer exp bits so a row's sum fits int32 (convert.shiftmax_precision)
    for length, scale in [(64, 2.0**-15), (196, 2.0**-12), (49, 0.001)]:
        scale, n = shiftmax_precision(scale, length)
        yield shiftmax(_s8(rng, 2, length) // 64, scale, f"len {length}, scale {scale:.3g}, "
                       f"n {n}", n=n)
        yield shiftmax(np.zeros((1, length), dtype=np.int64), scale, "uniform row, fine scale",
                       n=n)
    # ShiftGELU / SiLU: every int8 value, several scales and output ratios
    for scale, ratio, alpha in [(0.05, 0.9, ref.GELU_ALPHA), (0.02, 0.3, ref.GELU_ALPHA),
                                (0.1, 2.5, ref.GELU_ALPHA), (0.05, 0.9, 1.0), (0.3, 0.1, 1.0),
                                (0.004, 0.02, ref.GELU_ALPHA)]:
        yield shiftgelu(every_s8, scale, ratio, alpha, f"all int8, scale {scale}")
    yield shiftgelu(_s8(rng, 1001), 0.04, 0.5, note="odd count")
    # I-LayerNorm: LeViT widths and odd widths, constant rows (variance 0), extremes
    yield layernorm(_s8(rng, 6, 128), rng, "width 128")
    for c in [1, 3, 17, 31, 64, 100]:
        yield layernorm(_s8(rng, 4, c), rng, f"width {c}")
    yield layernorm(np.full((2, 48), -5, dtype=np.int64), rng, "constant rows")
    yield layernorm(np.tile([-128, 127], (3, 20)), rng, "extremes")
    # average pool, count_include_pad=False: EfficientFormer's 3×3/1/1 and others
    for c, h, w, k, s, p in [(3, 14, 14, 3, 1, 1), (2, 7, 21, 3, 1, 1), (2, 9, 9, 5, 1, 2),
                             (2, 8, 8, 2, 2, 0), (2, 9, 11, 3, 2, 1), (1, 1, 1, 3, 1, 1),
                             (2, 6, 30, 3, 1, 0), (1, 4, 4100, 3, 1, 1)]:
        yield avgpool(rng, c, h, w, k, s, p, f"{h}x{w} k{k} s{s} p{p}")
    # residual add: realistic, ties, saturation, subtraction (negative multiplier)
    a, b = _s8(rng, 1000), _s8(rng, 1000)
    (ma, mb), shift = ig.channel_dyadic(np.array([0.6, 0.8]))
    yield add(a, b, int(ma), int(mb), shift, "realistic")
    yield add(every_s8, every_s8[::-1].copy(), 1, 1, 1, "ties")
    yield add(every_s8, every_s8, 2**30, 2**30, 29, "saturation")
    yield add(a[:37], b[:37], 3 << 20, -(5 << 19), 22, "subtraction, odd count")
    # Hardswish: every int8 value at several scales, odd count
    for scale, out_scale in [(0.05, 0.05), (0.1, 0.04), (0.02, 0.01), (0.2, 0.5)]:
        yield hardswish(every_s8, scale, out_scale, f"scale {scale}")
    yield hardswish(_s8(rng, 77), 0.05, 0.03, "odd count")
    # constant add: a realistic attention bias, ties both ways, saturation, the ±2^61 bound,
    # shift 0, an odd count
    bias_mult, shift = ig.channel_dyadic(np.array([0.7]))
    bias = rng.integers(-(1 << (shift + 6)), 1 << (shift + 6), size=1000)
    yield addconst(_s8(rng, 1000), int(bias_mult[0]), bias, shift, "realistic")
    yield addconst(every_s8, 1, np.full(256, 7), 1, "ties")
    yield addconst(every_s8, 1, -np.arange(256) * 3, 2, "ties, negative c")
    yield addconst(every_s8, 2**31 - 1, np.full(256, 1 << 40), 30, "saturation")
    yield addconst(_s8(rng, 64), -(2**31), np.full(64, (1 << 61) - 1), 55, "extremes")
    yield addconst(_s8(rng, 23), 3, rng.integers(-500, 500, size=23), 0, "shift 0, odd count")
    # constant multiply (a LayerScale γ per element): realistic, ties, saturation, negative and
    # INT32_MIN multipliers, shift 0, an odd count
    gamma, shift = ig.channel_dyadic(rng.uniform(0.05, 0.9, size=1000))
    yield mulconst(_s8(rng, 1000), gamma * rng.choice([-1, 1], size=1000), shift, "realistic")
    yield mulconst(every_s8, np.full(256, 1), 1, "ties")
    yield mulconst(every_s8, np.full(256, -3), 2, "ties, negative")
    yield mulconst(every_s8, np.full(256, 2**31 - 1), 20, "saturation")
    yield mulconst(every_s8, np.full(256, -(2**31)), 40, "INT32_MIN")
    yield mulconst(_s8(rng, 19), rng.integers(-9, 9, size=19), 0, "shift 0, odd count")
    # activation × activation: LeViT's Q·Kᵀ (k = 16) and softmax(u8)·V, odd sizes, k not a
    # multiple of 16, the accumulator bound, ties, saturation, every u8 probability
    attn_mult, attn_shift = ig.channel_dyadic(np.array([3e-3]))
    m1, s1 = int(attn_mult[0]), attn_shift
    yield matmul(_s8(rng, 49, 16), _s8(rng, 16, 49), m1, s1, "Q·Kᵀ 49×16×49")
    probs = rng.integers(0, 129, size=(49, 49))
    yield matmul(probs.astype(np.uint8), _s8(rng, 49, 32), m1 // 8, s1, "softmax·V 49×49×32")
    yield matmul(np.arange(256).reshape(16, 16).astype(np.uint8), _s8(rng, 16, 5), 1, 12,
                 "every u8, n 5")
    yield matmul(_s8(rng, 5, 7), _s8(rng, 7, 3), 1, 1, "odd sizes, ties")
    yield matmul(_s8(rng, 9, 33), _s8(rng, 33, 17), 2**31 - 1, 20, "saturation")
    yield matmul(np.full((4, 64), -128), np.full((64, 20), -128), m1, s1 + 8, "bound, k 64")
    yield matmul(_s8(rng, 200, 64), _s8(rng, 64, 40), m1, s1, "many row blocks")
    # general convolution: the RGB stem (3→16, 3×3 stride 2), a strided 2×2 patch, a pointwise
    # (k a multiple of 16: no im2col), grouped, depthwise 5×5 and 7×7 (direct), relu, odd sizes
    yield conv2d(rng, 3, 17, 15, 16, (3, 3), (2, 2), (1, 1), note="RGB stem, odd sizes")
    # the NEON im2col's whole-vector loads (stride 1: 16 bytes, stride 2: LD2 of 32) on wide rows,
    # with the edge chunks of a row (fewer than 16 pixels, padding) lane by lane
    yield conv2d(rng, 3, 9, 75, 8, (3, 3), (2, 2), (1, 1), note="RGB stem, wide rows")
    yield conv2d(rng, 5, 6, 41, 6, (3, 3), (1, 1), (1, 1), relu=True, note="stride 1, wide rows")
    yield conv2d(rng, 8, 12, 12, 24, (2, 2), (2, 2), (0, 0), note="2×2 patches")
    yield conv2d(rng, 32, 7, 9, 20, (1, 1), (1, 1), (0, 0), note="pointwise")
    yield conv2d(rng, 16, 9, 9, 8, (3, 3), (1, 1), (1, 1), groups=4, relu=True,
                 note="grouped, relu")
    yield conv2d(rng, 6, 11, 10, 6, (5, 5), (1, 2), (2, 2), groups=6, note="depthwise 5×5")
    yield conv2d(rng, 5, 8, 8, 5, (7, 7), (1, 1), (3, 3), groups=5, relu=True,
                 note="depthwise 7×7, relu")
    yield conv2d(rng, 4, 6, 5, 7, (3, 1), (1, 1), (1, 0), note="3×1, asymmetric padding")
    yield conv2d(rng, 3, 2, 2, 4, (3, 3), (1, 1), (1, 1), x=np.full((1, 3, 2, 2), -128),
                 note="saturating extremes")
    # mean: a global pool (inner 1), a token mean (inner = channels, 16-lane and tail), ties,
    # saturation
    mean_mult, mean_shift = ig.channel_dyadic(np.array([1 / 49]))
    yield mean(_s8(rng, 2, 20, 7, 7), (2, 3), int(mean_mult[0]), mean_shift, "global pool")
    yield mean(_s8(rng, 2, 49, 37), (1,), int(mean_mult[0]), mean_shift, "token mean, 37 ch")
    yield mean(_s8(rng, 1, 16, 64), (1,), 1, 5, "ties")
    yield mean(np.full((3, 300), 127), (1,), 2**31 - 1, 30, "saturation")
    yield mean(np.full((3, 300), -128), (1,), 2**31 - 1, 30, "saturation, negative")
    # the NEON kernel's int16 partial sums flush before they overflow: long extreme rows
    for count, value in [(5000, -128), (4099, 127)]:
        mm, ms = ig.channel_dyadic(np.array([1 / count]))
        yield mean(np.full((2, count), value), (1,), int(mm[0]), ms, f"flush, inner 1, {value}")
    for value in (-128, 127):
        mm, ms = ig.channel_dyadic(np.array([1 / 600]))
        yield mean(np.full((1, 600, 33), value), (1,), int(mm[0]), ms, f"flush, rows, {value}")
    yield mean(_s8(rng, 1, 700, 48), (1,), int(mm[0]), ms, "flush, rows, random")
    # transpose: tiles and edges, strided input and output, one row, one column
    yield transpose(rng, 48, 32, 32, 48, "16×16 tiles")
    yield transpose(rng, 37, 21, 25, 40, "edges, strides")
    yield transpose(rng, 1, 50, 50, 1, "one row")
    yield transpose(rng, 50, 1, 3, 50, "one column")
    # lut: every byte, a random table, an odd count
    yield lut(np.arange(256), rng.integers(0, 256, size=256), "every byte")
    relu = ig.Relu("x", "y").reference({"x": np.arange(-128, 128)})
    yield lut(rng.integers(0, 256, size=1001), np.roll(relu, -128) & 0xFF, "relu, odd count")


def write(path: Path, seed: int = 0) -> int:
    """Write every case to `path`; returns the number of cases."""
    all_cases = list(cases(seed))
    out = bytearray(MAGIC + struct.pack("<I", len(all_cases)))
    for case in all_cases:
        name = case.op.encode()
        out += struct.pack("<I", len(name)) + name + struct.pack("<I", len(case.arrays))
        for key, arr in case.arrays.items():
            arr = np.ascontiguousarray(arr)
            out += struct.pack("<I", len(key)) + key.encode()
            out += struct.pack("<BQ", DTYPE_CODES[arr.dtype], arr.size)
            out += arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(bytes(out))
    tmp.replace(path)
    return len(all_cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    n = write(args.out, args.seed)
    print(f"wrote {n} golden cases to {args.out}")


if __name__ == "__main__":
    main()
