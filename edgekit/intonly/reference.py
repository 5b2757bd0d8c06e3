"""The integer-only arithmetic of I-ViT, defined exactly in numpy int64.

This module *is* the specification: the integer-only ONNX graph and the ARM kernels must match
it bit for bit. Every tensor is an integer array plus a real scale (value = int · scale); no
float is touched between the entry quantize and the exit dequantize, except where noted
(scales are compile-time constants turned into dyadic multipliers here).

Rounding rules (chosen to be expressible with integer ops everywhere):
- `>>` is an arithmetic (floor) shift: -5 >> 1 == -3. numpy's right_shift on signed ints is.
- `//` is floor division. (ONNX integer Div truncates; the ONNX builder emulates floor.)
- "round(x / 2^c)" is round-half-up: (x + 2^(c-1)) >> c.
"""

from __future__ import annotations

import math

import numpy as np

INT64 = np.int64
INT32_MAX = 2**31 - 1


def _i64(x: np.ndarray | int) -> np.ndarray:
    return np.asarray(x, dtype=INT64)


# --- dyadic requantization -------------------------------------------------------------------

def dyadic(ratio: float, bits: int = 31) -> tuple[int, int]:
    """ratio ≈ b / 2^c with b < 2^bits: frexp(ratio) = m·2^e, b = round(m·2^bits), c = bits − e.

    Raises for ratios a 62-bit shift cannot express."""
    if not (ratio > 0 and math.isfinite(ratio)):
        raise ValueError(f"dyadic ratio must be positive and finite, got {ratio}")
    m, e = math.frexp(ratio)
    b = int(round(m * 2**bits))
    if b == 2**bits:  # m rounded up to 1.0
        b //= 2
        e += 1
    c = bits - e
    if not 0 <= c <= 62:
        raise ValueError(f"ratio {ratio} needs shift {c}, outside 0..62")
    return b, c


def shift_round(x: np.ndarray, c: int) -> np.ndarray:
    """round(x / 2^c), half up, for c ≥ 0."""
    x = _i64(x)
    if c == 0:
        return x
    return (x + (1 << (c - 1))) >> c


def requantize(x: np.ndarray, b: int, c: int, qmin: int = -128, qmax: int = 127
               ) -> np.ndarray:
    """y = clamp(round(x · b / 2^c)). x must fit 32 bits so that x·b fits 63."""
    x = _i64(x)
    if np.abs(x).max(initial=0) >= 2**31:
        raise OverflowError("requantize input exceeds int32")
    return np.clip(shift_round(x * b, c), qmin, qmax)


def quantize(x: np.ndarray, scale: float, qmin: int = -128, qmax: int = 127) -> np.ndarray:
    """The single float→int step at the graph entry: clamp(round_half_even(x / scale))."""
    return np.clip(np.rint(np.asarray(x, dtype=np.float64) / scale), qmin, qmax).astype(INT64)


# --- shift-exp (shared by Shiftmax and ShiftGELU) ----------------------------------------------

def shift_exp_x0(scale: float) -> int:
    """x0 = ⌊−1/scale⌋: the (negative) integer of −1.0 at `scale`, shift_exp's one parameter."""
    x0 = math.floor(-1.0 / scale)
    if x0 >= 0:
        raise ValueError(f"scale {scale} too large for shift_exp (needs scale < 1)")
    return x0


def shift_exp(x: np.ndarray, scale: float, n: int = 15) -> tuple[np.ndarray, float]:
    """exp(x·scale) for x ≤ 0 as (int, scale·... ) ≈ 2^(x·scale·log2 e), I-ViT's ShiftExp.

    x·log2(e) ≈ x + (x >> 1) − (x >> 4); with x0 = ⌊−1/scale⌋ (the int of −1.0):
    q = ⌊x / x0⌋, r = x − q·x0, exp = ⌊(r/2 − x0) · 2^(n−q)⌋ = ((r − 2·x0) << (n − q)) >> 1.
    Returns (exp_int ≥ 0, its scale = scale / 2^n ... expressed as the real scale of exp_int).
    """
    x = _i64(x)
    if (x > 0).any():
        raise ValueError("shift_exp expects x ≤ 0 (subtract the max first)")
    x = x + (x >> 1) - (x >> 4)
    x0 = shift_exp_x0(scale)
    x = np.maximum(x, n * x0)
    q = x // x0  # 0..n
    r = x - q * x0  # in (x0, 0]
    exp = ((r - 2 * x0) << (n - q)) >> 1
    return np.maximum(exp, 0), -1.0 / x0 / 2**n  # real(exp_int) ≈ exp_int · (1/|x0|)/2^n


def shiftmax(x: np.ndarray, scale: float, axis: int = -1, n: int = 15, out_bits: int = 8
             ) -> tuple[np.ndarray, float]:
    """Integer softmax: exp via shift_exp, normalised by an integer reciprocal.

    factor = ⌊(2^31 − 1) / Σ exp⌋;  out = round(exp · factor / 2^(32 − out_bits)) (half up),
    scale 2^(1 − out_bits) (values 0..2^(out_bits−1), unsigned).

    Rounded, not floored (I-ViT floors): exp · factor is just below 2^31 · p, so a floor turns a
    uniform row over 64 tokens (p = 2 levels) into 1 level and loses half the attention mass;
    over LeViT-like rows it lost about a quarter of it."""
    x = _i64(x)
    x = x - x.max(axis=axis, keepdims=True)
    exp, _ = shift_exp(x, scale, n)
    total = np.minimum(exp.sum(axis=axis, keepdims=True), INT32_MAX)
    factor = INT32_MAX // total
    out = (exp * factor + (1 << (31 - out_bits))) >> (32 - out_bits)
    return out, 2.0 ** (1 - out_bits)


GELU_ALPHA = 1.702  # GELU(x) ≈ x·σ(1.702·x) (I-ViT); SiLU(x) = x·σ(x) is the same op with 1.0


def shift_gelu(x: np.ndarray, scale: float, n: int = 15, sig_bits: int = 8,
               alpha: float = GELU_ALPHA) -> tuple[np.ndarray, float]:
    """x · σ(α·x) — GELU (α = 1.702) or SiLU (α = 1) — σ from shift_exp of −|z| (z = α·x,
    scale α·s):

    e = exp(−|z|) as an int with `one` = the int of 1.0 (= −x0·2^n), f = ⌊(2^31 − 1)/(one + e)⌋,
    σ_int = ⌊(z ≥ 0 ? one : e) · f / 2^(32 − sig_bits)⌋ (scale 2^(1 − sig_bits));
    out = x_int · σ_int, scale s · 2^(1 − sig_bits).

    I-ViT instead subtracts the row max and normalises e^(z−m) by e^(z−m) + e^(−m); when m is
    large both terms fall under shift_exp's 2^−n floor and σ saturates (errors up to 0.3 on
    N(0, 1.5) inputs, measured here). −|z| ≤ 0 needs no max and never saturates that way."""
    x = _i64(x)
    sig_scale = scale * alpha
    e, _ = shift_exp(-np.abs(x), sig_scale, n)
    x0 = shift_exp_x0(sig_scale)
    one = -x0 << n
    factor = INT32_MAX // (one + e)
    sig = (np.where(x >= 0, one, e) * factor) >> (32 - sig_bits)
    return x * sig, scale * 2.0 ** (1 - sig_bits)


# --- I-LayerNorm --------------------------------------------------------------------------------

def isqrt_newton(v: np.ndarray, iterations: int = 16, start: int = 2**16) -> np.ndarray:
    """k ← ⌊(k + ⌊v/k⌋) / 2⌋ from `start`, `iterations` times (I-ViT's integer sqrt).

    I-ViT runs 10 iterations; measured here that leaves errors up to 63 for V near 2^44 (wide
    LayerNorms of large activations), while 16 end on ⌊√V⌋ or ⌊√V⌋ + 1 for every V < 2^44
    (integer Newton may oscillate between the two, e.g. V = 3)."""
    v = _i64(v)
    k = np.full_like(v, start)
    for _ in range(iterations):
        k = (k + v // k) >> 1
        k = np.maximum(k, 1)
    return k


def i_layernorm_core(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, float]:
    """Normalise over `axis` with integers only: y' ≈ (x − μ)/σ at scale √C / 2^30.

    μ = round_half_up(mean) = ⌊(2·Σx + C) / (2C)⌋; y = x − μ; V = Σy²; k = isqrt_newton(V);
    y' = ⌊y · ⌊(2^31 − 1)/k⌋ / 2⌋. (γ, β are applied by the caller as an integer affine.)"""
    x = _i64(x)
    c = x.shape[axis]
    mean = (2 * x.sum(axis=axis, keepdims=True) + c) // (2 * c)
    y = x - mean
    var = (y * y).sum(axis=axis, keepdims=True)
    k = isqrt_newton(var)
    factor = INT32_MAX // k
    return (y * factor) >> 1, math.sqrt(c) / 2**30
