"""Signed floor arithmetic in ONNX Runtime equals the numpy reference bit for bit (negative
values and exact ties included)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from edgekit.intonly import reference as ref
from edgekit.intonly.onnx_ops import GraphBuilder

# negatives, ties at every shift, values near the int32 range
X = np.concatenate([np.arange(-40, 41), [-(2**31) + 1, 2**31 - 1, -(2**30), 2**30 + 1],
                    np.random.default_rng(0).integers(-(2**31) + 1, 2**31 - 1, 500)]
                   ).astype(np.int64)


def _run(build) -> np.ndarray:
    g = GraphBuilder()
    out = build(g, "x")
    graph = g.graph([helper.make_tensor_value_info("x", TensorProto.INT64, [len(X)])],
                    [helper.make_tensor_value_info(out, TensorProto.INT64, [len(X)])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model, full_check=True)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": X})[0]


@pytest.mark.parametrize("d", [1, 2, 3, 7, 16, 2**24])
def test_floor_div_matches_python_floor_division(d):
    assert _run(lambda g, x: g.floor_div(x, d)).tolist() == [int(v) // d for v in X]


@pytest.mark.parametrize("c", [0, 1, 4, 17, 30])
def test_shift_right_is_arithmetic(c):
    assert np.array_equal(_run(lambda g, x: g.shift_right(x, c)), X >> c)


@pytest.mark.parametrize("c", [1, 3, 12])
def test_shift_round_is_round_half_up(c):
    assert np.array_equal(_run(lambda g, x: g.shift_round(x, c)), ref.shift_round(X, c))


def test_requantize_matches_reference():
    b, c = ref.dyadic(0.0123)
    got = _run(lambda g, x: g.requantize(x, b, c, -128, 127))
    assert np.array_equal(got, ref.requantize(X, b, c))
