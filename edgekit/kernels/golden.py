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
