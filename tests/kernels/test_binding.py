"""edgekit.kernels (the host build of kernels_arm/ through ctypes) against the IR reference, for
every op and every path this machine runs, on edge inputs; bad input gets a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit import kernels as ek
from edgekit.errors import UsageError
from edgekit.intonly import graph as ig
from edgekit.intonly import reference as ref
from edgekit.kernels import intops

RNG = np.random.default_rng(7)
EVERY_S8 = np.arange(-128, 128, dtype=np.int64)


def s8(*shape: int) -> np.ndarray:
    return RNG.integers(-128, 128, size=shape, dtype=np.int64)


def check(op: ig.IntOp, env: dict[str, np.ndarray], kernel_op: str) -> None:
    """Every path of the op's kernel returns exactly op.reference(env)."""
    want = op.reference(env)
    paths = ek.paths(kernel_op)
    assert paths, kernel_op
    for path in paths:
        got = intops.run(op, env, path)
        assert got is not None, (kernel_op, path)
        assert got.shape == want.shape and np.array_equal(got, want), (kernel_op, path)


def test_table_lists_every_op_with_a_scalar_and_a_dispatched_path():
    ops = {k.op for k in ek.kernels()}
    assert ops == set(ek.OPS)
    for op in ek.OPS:
        assert ek.paths(op)[0] == "scalar"
        assert ek.select(op).runs_here
    assert all(k.name == f"ek_{k.op}__{k.path}" for k in ek.kernels())


@pytest.mark.parametrize("m,k,n,relu", [(1, 1, 1, False), (5, 19, 7, False), (16, 128, 64, True),
                                        (9, 200, 13, False), (2, 3, 4, 1)])
def test_gemm(m, k, n, relu):
    mult, shift = ig.channel_dyadic(RNG.uniform(2e-5, 2e-4, size=n))
    op = ig.Linear("x", "y", s8(n, k), RNG.integers(-2**14, 2**14, size=n), mult, shift,
                   bool(relu))
    check(op, {"x": s8(3, m, k)}, "s8_gemm_requant")


def test_gemm_ties_and_saturation():
    for mult, shift in [(np.full(6, 1), 1), (np.full(6, 3), 2), (np.full(6, 2**30), 20)]:
        op = ig.Linear("x", "y", s8(6, 33), RNG.integers(-99, 99, size=6), mult, shift)
        check(op, {"x": s8(7, 33)}, "s8_gemm_requant")


@pytest.mark.parametrize("h,w,stride,pad", [(14, 14, 1, 1), (7, 9, 2, 1), (5, 5, 1, 0),
                                            (11, 37, 2, 0), (1, 1, 1, 1)])
def test_depthwise_3x3(h, w, stride, pad):
    c = 5
    mult, shift = ig.channel_dyadic(RNG.uniform(5e-4, 4e-3, size=c))
    op = ig.Conv2d("x", "y", s8(c, 1, 3, 3), RNG.integers(-4096, 4096, size=c), mult, shift,
                   (stride, stride), (pad, pad), c, relu=stride == 2)
    check(op, {"x": s8(2, c, h, w)}, "s8_dwconv3x3_requant")


@pytest.mark.parametrize("scale", [0.004, 0.05, 0.3, 0.9])
def test_shiftmax(scale):
    x = np.concatenate([s8(5, 33), np.full((2, 33), 9), np.tile([-128, 127], (1, 17))[:, :33]])
    check(ig.Shiftmax("x", "y", scale), {"x": x}, "s8_shiftmax")


@pytest.mark.parametrize("alpha", [ref.GELU_ALPHA, 1.0])
@pytest.mark.parametrize("scale,ratio", [(0.004, 0.02), (0.05, 0.9), (0.3, 0.1)])
def test_shiftgelu_every_int8(alpha, scale, ratio):
    mult, shift = ref.dyadic(ratio)
    check(ig.ShiftGelu("x", "y", scale, mult, shift, alpha=alpha), {"x": EVERY_S8},
          "s8_shiftgelu")


@pytest.mark.parametrize("c", [1, 17, 100, 128])
def test_layernorm(c):
    gamma, shift = ig.channel_dyadic(RNG.uniform(0.2, 2.0, size=c) * 2e-3, bits=24)
    beta = RNG.integers(-2**(shift - 2), 2**(shift - 2), size=c)
    x = np.concatenate([s8(4, c), np.full((1, c), -5), np.tile([-128, 127], (1, c))[:, :c]])
    check(ig.LayerNorm("x", "y", gamma, beta, shift), {"x": x}, "s8_ilayernorm")


@pytest.mark.parametrize("h,w,k,stride,pad", [(14, 14, 3, 1, 1), (9, 9, 5, 1, 2), (8, 8, 2, 2, 0),
                                              (9, 11, 3, 2, 1), (6, 30, 3, 1, 0)])
def test_avgpool_count_include_pad_false(h, w, k, stride, pad):
    counts = ig._conv_int(np.ones((1, 1, h, w), np.int64), np.ones((1, 1, k, k), np.int8),
                          (stride, stride), (pad, pad), 1)[0, 0]
    mult, shift = ig.channel_dyadic((0.9 / counts).reshape(-1))
    op = ig.AvgPool("x", "y", k, stride, pad, 3, mult.reshape(counts.shape), shift)
    check(op, {"x": s8(2, 3, h, w)}, "s8_avgpool_requant")


def test_add_ties_saturation_subtraction():
    a, b = EVERY_S8, EVERY_S8[::-1].copy()
    for ma, mb, shift in [(1, 1, 1), (2**30, 2**30, 29), (3 << 20, -(5 << 19), 22),
                          (1288490189, 1717986918, 31)]:
        check(ig.Add("a", "b", "y", ma, mb, shift), {"a": a, "b": b}, "s8_add_requant")


@pytest.mark.parametrize("scale,out_scale", [(0.05, 0.05), (0.02, 0.01), (0.2, 0.5)])
def test_hardswish_every_int8(scale, out_scale):
    mult, shift = ref.dyadic(scale * scale / (6.0 * out_scale))
    op = ig.Hardswish("x", "y", int(round(3 / scale)), int(round(6 / scale)), mult, shift)
    check(op, {"x": EVERY_S8}, "s8_hardswish")


def test_constant_add_and_multiply_broadcast_ties_and_extremes():
    x = s8(2, 4, 6, 6)
    bias = RNG.integers(-(1 << 40), 1 << 40, size=(1, 4, 6, 6))  # LeViT-like: per (head, i, j)
    for mult, const, shift in [(1288490189, bias, 37), (1, np.full((1, 1, 1, 1), 7), 1),
                               (-(2**31), np.full((1, 4, 1, 1), (1 << 61) - 1), 55)]:
        check(ig.AddConst("x", "y", const, mult, shift), {"x": x}, "s8_addconst_requant")
    gamma = RNG.integers(-(2**31), 2**31, size=(1, 4, 1, 1))  # a per-channel γ, INT32 extremes
    for mult, shift in [(gamma, 40), (np.full((1, 1, 1, 6), -3), 2), (np.ones(1, np.int64), 0)]:
        check(ig.MulConst("x", "y", mult, shift), {"x": x}, "s8_mulconst_requant")
    check(ig.MulConst("x", "y", np.full(256, 1), 1), {"x": EVERY_S8}, "s8_mulconst_requant")


@pytest.mark.parametrize("c,o,kernel,stride,pad,groups,relu", [
    (3, 16, (3, 3), (2, 2), (1, 1), 1, False),   # the RGB stem
    (8, 12, (2, 2), (2, 2), (0, 0), 1, False),   # patches
    (32, 20, (1, 1), (1, 1), (0, 0), 1, True),   # pointwise: rows are the NHWC pixels
    (16, 8, (3, 3), (1, 1), (1, 1), 4, False),   # grouped
    (6, 6, (5, 5), (1, 2), (2, 2), 6, True),     # depthwise 5×5 (direct)
    (4, 7, (3, 1), (1, 1), (1, 0), 1, False),    # 3×1, asymmetric padding
])
def test_general_convolution_every_geometry(c, o, kernel, stride, pad, groups, relu):
    w = s8(o, c // groups, *kernel)
    bias = RNG.integers(-2**12, 2**12, size=o)
    mult, shift = ig.channel_dyadic(RNG.uniform(2e-4, 2e-3, size=o))
    op = ig.Conv2d("x", "y", w, bias, mult, shift, stride, pad, groups, relu)
    assert intops.kernel_op(op) == "s8_conv2d_requant"
    check(op, {"x": s8(2, c, 11, 9)}, "s8_conv2d_requant")


def test_attention_matmuls_signed_and_softmax_probabilities():
    mult, shift = ig.channel_dyadic(np.array([3e-3]))
    qk = ig.MatMul("a", "b", "y", int(mult[0]), shift)
    check(qk, {"a": s8(2, 4, 49, 16), "b": s8(2, 4, 16, 49)}, "s8_matmul_requant")
    probs = RNG.integers(0, 129, size=(4, 49, 49))  # Shiftmax's uint8 output, 128 included
    probs[0, 0] = 128
    check(qk, {"a": probs, "b": s8(4, 49, 32)}, "s8_matmul_requant")
    check(ig.MatMul("a", "b", "y", 1, 1), {"a": s8(5, 7), "b": s8(7, 3)}, "s8_matmul_requant")


def test_mean_over_a_contiguous_block_of_axes():
    mult, shift = ig.channel_dyadic(np.array([1 / 49]))
    for axes, keep in [((2, 3), False), ((2, 3), True), ((1,), False)]:
        op = ig.Mean("x", "y", axes, keep, int(mult[0]), shift)
        check(op, {"x": s8(2, 20, 7, 7)}, "s8_mean_requant")
    gap = ig.Mean("x", "y", (1, 3), False, int(mult[0]), shift)
    assert intops.run(gap, {"x": s8(2, 3, 4, 5)}) is None  # not contiguous: the reference


def test_transpose_and_table_lookup_kernels():
    for rows, cols in [(48, 32), (37, 21), (1, 50), (50, 1)]:
        x = s8(rows, cols)
        for path in ek.paths("x8_transpose"):
            assert np.array_equal(ek.x8_transpose(x, path=path), x.T), (rows, cols, path)
        u = RNG.integers(0, 256, size=(rows, cols))
        assert np.array_equal(ek.x8_transpose(u), u.T)
    table = RNG.integers(-128, 128, size=256)
    x = np.concatenate([EVERY_S8, s8(1001)])
    for path in ek.paths("x8_lut"):
        assert np.array_equal(ek.x8_lut(x, table, path=path), table[x.astype(np.uint8)]), path
    with pytest.raises(UsageError, match="256"):
        ek.x8_lut(x, table[:10])


def test_ops_without_a_kernel_fall_back_to_none():
    x = {"x": s8(2, 4)}
    assert intops.run(ig.Relu("x", "y"), x) is None
    wide = ig.Linear("x", "y", s8(3, 4), np.array([2**40, 0, 0]), np.ones(3, np.int64), 1)
    assert intops.run(wide, x) is None  # bias beyond int32: the reference runs it


def test_bad_input_is_refused_with_the_reason():
    with pytest.raises(UsageError, match="out of range"):
        ek.s8_add_requant(np.array([300]), np.array([1]), 1, 1, 0)
    with pytest.raises(UsageError, match="must be integers"):
        ek.s8_hardswish(np.array([0.5]), 1, 2, 1, 0)
    with pytest.raises(UsageError, match="do not match"):
        ek.s8_gemm_requant(np.zeros((2, 3), np.int8), np.zeros((4, 5), np.int8), 0, 1, 0)
    with pytest.raises(UsageError, match="shift"):
        ek.s8_add_requant(np.array([1]), np.array([1]), 1, 1, 63)
    with pytest.raises(UsageError, match="no path 'sve'"):
        ek.s8_shiftmax(np.zeros((1, 4), np.int8), 0.1, path="sve")
    with pytest.raises(UsageError, match="scale"):
        ek.s8_shiftmax(np.zeros((1, 4), np.int8), float("nan"))
    with pytest.raises(UsageError, match="do not chain"):
        ek.s8_matmul_requant(np.zeros((2, 3), np.int8), np.zeros((4, 5), np.int8), 1, 0)
    with pytest.raises(UsageError, match="groups"):
        ek.s8_conv2d_requant(np.zeros((3, 4, 4), np.int8), np.zeros((4, 2, 3, 3), np.int8), 0,
                             1, 0, groups=2)
    with pytest.raises(UsageError, match="smaller than"):
        ek.s8_conv2d_requant(np.zeros((3, 2, 2), np.int8), np.zeros((4, 3, 5, 5), np.int8), 0,
                             1, 0)
    with pytest.raises(UsageError, match="contiguous"):
        ek.s8_mean_requant(np.zeros((2, 3, 4), np.int8), (0, 2), 1, 0)
