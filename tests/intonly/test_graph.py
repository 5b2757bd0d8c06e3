"""The integer IR: the numpy reference and the emitted ONNX agree bit for bit in onnxruntime,
and the integer-only property is checked (and fails by name when a float sneaks in)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgekit.intonly.graph import (
    Add,
    Concat,
    Conv2d,
    Dequantize,
    GlobalAvgPool,
    IntGraph,
    Linear,
    Quantize,
    channel_dyadic,
    float_violations,
    run_reference,
    to_onnx,
)

RNG = np.random.default_rng(0)


def _w(*shape: int) -> np.ndarray:
    return RNG.integers(-127, 128, size=shape).astype(np.int8)


def _graph() -> IntGraph:
    s_in, s1, s2, s3 = 0.02, 0.05, 0.04, 0.1
    w1, w2, w3 = _w(8, 3, 3, 3), _w(8, 1, 3, 3), _w(10, 8)
    s_w1 = RNG.uniform(0.001, 0.01, 8)
    s_w2 = RNG.uniform(0.001, 0.01, 8)
    s_w3 = RNG.uniform(0.001, 0.01, 10)
    m1, c1 = channel_dyadic(s_in * s_w1 / s1)
    m2, c2 = channel_dyadic(s1 * s_w2 / s2)
    ma, mb, ca = *channel_dyadic(np.array([s1 / s3, s2 / s3]))[0], \
        channel_dyadic(np.array([s1 / s3, s2 / s3]))[1]
    mp, cp = channel_dyadic(np.array([s3 / (s3 * 36)]))
    m3, c3 = channel_dyadic(s3 * s_w3 / 0.2)
    return IntGraph("input", "logits", (2, 3, 12, 12), (2, 10), [
        Quantize("input", "q0", s_in),
        Conv2d("q0", "c1", w1, RNG.integers(-5000, 5000, 8), m1, c1, (2, 2), (1, 1), relu=True),
        Conv2d("c1", "c2", w2, RNG.integers(-500, 500, 8), m2, c2, (1, 1), (1, 1), groups=8),
        Add("c1", "c2", "sum", int(ma), int(mb), ca),
        GlobalAvgPool("sum", "pool", int(mp[0]), cp),
        Linear("pool", "fc", w3, RNG.integers(-2000, 2000, 10), m3, c3),
        Dequantize("fc", "logits", 0.2),
    ])


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def test_onnx_equals_reference_bit_for_bit():
    graph = _graph()
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    for seed in range(20):
        x = np.random.default_rng(seed).normal(0, 1.2, size=(2, 3, 12, 12)).astype(np.float32)
        want = run_reference(graph, x)
        got = _ort(model, x)
        assert got.dtype == np.float32 and np.array_equal(got, want), seed
        assert np.unique(want).size > 5  # not saturated to a constant


def test_integer_only_check_passes_and_names_a_sneaked_float():
    model = to_onnx(_graph())
    assert float_violations(model) == []
    # splice a float detour after the first conv: Cast → float → Cast back
    g = model.graph
    victim = next(n for n in g.node if n.op_type == "ConvInteger").output[0]
    users = [n for n in g.node if victim in n.input]
    detour = [helper.make_node("Cast", [victim], ["sneaky_float"], to=TensorProto.FLOAT,
                               name="sneak1"),
              helper.make_node("Cast", ["sneaky_float"], ["back_to_int"], to=TensorProto.INT32,
                               name="sneak2")]
    for n in users:
        for i, name in enumerate(n.input):
            if name == victim:
                n.input[i] = "back_to_int"
    idx = list(g.node).index(users[0])
    for k, node in enumerate(detour):
        g.node.insert(idx + k, node)
    bad = float_violations(model)
    assert any(b.startswith("sneaky_float") for b in bad), bad


def test_channel_dyadic_shares_one_shift():
    b, c = channel_dyadic(np.array([0.5, 0.25, 0.001]))
    assert b.max() < 2**31 and np.allclose(b / 2.0**c, [0.5, 0.25, 0.001], rtol=1e-6)
    with pytest.raises(ValueError):
        channel_dyadic(np.array([0.1, 0.0]))


def _attention_block() -> IntGraph:
    """LayerNorm → q/k/v → q·kᵀ → Shiftmax → ·v → proj → residual add → ShiftGELU."""
    from edgekit.intonly.graph import LayerNorm, Layout, MatMul, ShiftGelu, Shiftmax

    c, s_x = 32, 0.03
    gm, sh = channel_dyadic(RNG.uniform(0.5, 1.5, c) * (2**-30 * np.sqrt(c)) / 0.05, bits=24)
    beta = RNG.integers(-(2**20), 2**20, c)

    def lin(name, src, out_scale):
        w = _w(c, c)
        m, sft = channel_dyadic(0.05 * RNG.uniform(0.001, 0.01, c) / out_scale)
        return Linear(src, name, w, RNG.integers(-3000, 3000, c), m, sft)

    mq, cq = channel_dyadic(np.array([0.08 * 0.08 / 0.5]))
    mv, cv = channel_dyadic(np.array([2.0**-7 * 0.08 / 0.08]))
    ma, mb, ca = *channel_dyadic(np.array([s_x / 0.1, 0.08 / 0.1]))[0], \
        channel_dyadic(np.array([s_x / 0.1, 0.08 / 0.1]))[1]
    mg, cg = channel_dyadic(np.array([0.1 * 2.0**-7 / 0.05]))
    return IntGraph("input", "out", (2, 16, c), (2, 16, c), [
        Quantize("input", "x", s_x),
        LayerNorm("x", "ln", gm, beta, sh),
        lin("q", "ln", 0.08), lin("k", "ln", 0.08), lin("v", "ln", 0.08),
        Layout("k", "kt", perm=(0, 2, 1)),
        MatMul("q", "kt", "logits", int(mq[0]), cq),
        Shiftmax("logits", "probs", 0.5),
        MatMul("probs", "v", "ctx", int(mv[0]), cv),
        lin("proj", "ctx", 0.08),
        Add("x", "proj", "res", int(ma), int(mb), ca),
        ShiftGelu("res", "act", 0.1, int(mg[0]), cg),
        Dequantize("act", "out", 0.05),
    ])


def test_attention_block_with_shift_ops_is_bit_exact_and_integer_only():
    graph = _attention_block()
    model = to_onnx(graph)
    onnx.checker.check_model(model, full_check=True)
    assert float_violations(model) == []
    env_ops = {type(op).__name__ for op in graph.ops}
    assert {"LayerNorm", "Shiftmax", "ShiftGelu", "MatMul"} <= env_ops
    for seed in range(20):
        x = np.random.default_rng(100 + seed).normal(0, 1.5, size=(2, 16, 32)).astype(
            np.float32)
        want = run_reference(graph, x)
        assert np.array_equal(_ort(model, x), want), seed
        assert np.unique(want).size > 10


def test_concat_rescales_each_input_to_the_output_scale_bit_exactly():
    from edgekit.intonly.reference import shift_round

    a = RNG.integers(-128, 128, size=(1, 3, 4, 4)).astype(np.float32)
    mults, shift = channel_dyadic(np.array([0.05 / 0.08, 0.11 / 0.08]))  # ×1.375 saturates
    graph = IntGraph("input", "logits", (1, 3, 4, 4), (1, 6, 4, 4), [
        Quantize("input", "a", 1.0),
        Concat(("a", "a"), "both", 1, (int(mults[0]), int(mults[1])), shift),
        Dequantize("both", "logits", 0.08)])
    want = run_reference(graph, a)
    assert np.array_equal(_ort(to_onnx(graph), a), want)
    parts = [np.clip(shift_round(a.astype(np.int64) * int(m), shift), -128, 127) for m in mults]
    assert np.array_equal(want, np.concatenate(parts, axis=1).astype(np.float32) * np.float32(0.08))
    assert parts[1].min() == -128 and parts[1].max() == 127  # the clamp was exercised
    assert float_violations(to_onnx(graph)) == []
