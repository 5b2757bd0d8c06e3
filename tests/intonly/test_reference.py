"""The integer reference: exact rounding rules, and fidelity of the approximations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgekit.intonly import reference as ref

RNG = np.random.default_rng(0)


def test_shifts_floor_and_ties_round_half_up():
    assert int(np.int64(-5) >> 1) == -3  # arithmetic shift = floor, not truncation
    x = ref._i64([3, -3, 5, -5, 1, -1, 2, -2])
    assert ref.shift_round(x, 1).tolist() == [2, -1, 3, -2, 1, 0, 1, -1]


@pytest.mark.parametrize("ratio", [0.7, 0.0123, 3.5e-5, 1.0, 0.999999999, 2.0**-30])
def test_dyadic_multiplier_is_within_half_an_ulp_of_31_bits(ratio):
    b, c = ref.dyadic(ratio)
    assert 2**30 <= b < 2**31 and 0 <= c <= 62
    assert abs(b / 2**c - ratio) <= ratio * 2.0**-31


def test_dyadic_refuses_what_a_62_bit_shift_cannot_hold():
    with pytest.raises(ValueError, match="outside 0..62"):
        ref.dyadic(2.0**-40)


def test_requantize_matches_exact_rational_rounding():
    x = RNG.integers(-(2**31) + 1, 2**31 - 1, size=5000)
    b, c = ref.dyadic(0.00731)
    got = ref.requantize(x, b, c, -(2**31), 2**31 - 1)
    # exact: floor(x·b / 2^c + 1/2) with Python integers
    want = [(int(v) * b + (1 << (c - 1))) >> c for v in x]
    assert got.tolist() == want
    with pytest.raises(OverflowError):
        ref.requantize(np.array([2**31]), b, c)


def test_isqrt_newton_converges_for_the_variance_range():
    v = np.concatenate([RNG.integers(0, 2**44, size=2000), [0, 1, 2, 3, 2**16, 2**44 - 1]])
    k = ref.isqrt_newton(v)
    exact = np.array([math.isqrt(int(a)) for a in v])
    # integer Newton ends on ⌊√V⌋ or ⌊√V⌋ + 1 (it can oscillate between them, e.g. V = 3)
    assert np.all((k - exact >= 0) & (k - exact <= 1))


def test_shiftmax_close_to_softmax():
    s = 0.04
    x = RNG.normal(0, 3, size=(64, 49))
    q = ref.quantize(x, s, -(2**15), 2**15 - 1)
    out, out_scale = ref.shiftmax(q, s)
    assert out.min() >= 0 and out.max() <= 128
    sm = np.exp(q * s - (q * s).max(-1, keepdims=True))
    sm /= sm.sum(-1, keepdims=True)
    assert np.abs(out * out_scale - sm).max() < 0.03


def test_shift_gelu_close_to_gelu():
    s = 0.02
    x = RNG.normal(0, 1.5, size=(32, 64))
    q = ref.quantize(x, s, -(2**15), 2**15 - 1)
    out, out_scale = ref.shift_gelu(q, s)
    xf = q * s
    gelu = 0.5 * xf * (1 + np.vectorize(math.erf)(xf / math.sqrt(2)))
    # x·σ(1.702x) itself is within 0.021 of GELU; 8-bit σ adds ≤ |x|/128
    err = np.abs(out * out_scale - gelu)
    assert err.max() < 0.021 + np.abs(xf).max() / 128 + 1e-9
    assert err.mean() < 0.015


def test_i_layernorm_core_normalises():
    x = RNG.normal(3, 2, size=(16, 192)) * 40
    q = np.round(x).astype(np.int64)
    y, scale = ref.i_layernorm_core(q)
    want = (q - q.mean(-1, keepdims=True)) / q.std(-1, keepdims=True)
    assert np.abs(y * scale - want).max() < 0.02


def test_shift_exp_refuses_positive_input():
    with pytest.raises(ValueError, match="x ≤ 0"):
        ref.shift_exp(np.array([1]), 0.1)
