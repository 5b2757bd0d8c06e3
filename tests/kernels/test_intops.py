"""Whole integer-only graphs of models trained on real data (Fashion-MNIST small configs): the
reference with its kernel fast path equals the pure reference bit for bit, and the kernel shapes
an artifact's manifest carries for ek_bench come from the same graph."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit import fashion_mnist as fm
from edgekit.intonly import graph as ig
from edgekit.kernels import intops

MODELS = {  # model → kernel ops its graph must exercise
    "fmnist_levit": {"s8_gemm_requant", "s8_shiftmax", "s8_hardswish", "s8_add_requant",
                     "s8_addconst_requant", "s8_matmul_requant", "s8_conv2d_requant",
                     "s8_mean_requant"},
    "fmnist_efficientformer": {"s8_gemm_requant", "s8_shiftmax", "s8_shiftgelu",
                               "s8_ilayernorm", "s8_avgpool_requant", "s8_add_requant",
                               "s8_matmul_requant", "s8_conv2d_requant", "s8_mean_requant"},
    "fmnist_mobilevit": {"s8_gemm_requant", "s8_dwconv3x3_requant", "s8_shiftmax",
                         "s8_shiftgelu", "s8_ilayernorm", "s8_add_requant", "s8_matmul_requant",
                         "s8_conv2d_requant", "s8_mean_requant"},
}


def _graph_and_inputs(model: str) -> tuple[ig.IntGraph, np.ndarray]:
    from edgekit.models.source import load_source

    from edgekit.calibration import calibration_set
    from edgekit.intonly.convert import convert
    from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline

    src = load_source(model)
    cal = calibration_set("fmnist", src.data_config, 32)
    x = torch.from_numpy(cal.samples[:1])
    DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([x, x]))
    graph = convert(src.model, x, cal.samples)
    images, _ = fm.load("test")
    xs = fm.to_model_input(images[:8], src.data_config["input_size"][-1],
                           tuple(src.data_config["mean"]), tuple(src.data_config["std"]))
    return graph, xs


@pytest.mark.parametrize("model", sorted(MODELS))
def test_kernel_fast_path_equals_the_reference_on_trained_models(model):
    graph, xs = _graph_and_inputs(model)
    covered = {intops.kernel_op(op) for op in graph.ops} - {None}
    assert MODELS[model] <= covered, covered
    for i in range(len(xs)):
        want = ig.run_reference(graph, xs[i:i + 1])
        got = ig.run_reference(graph, xs[i:i + 1], kernels=True)
        assert np.array_equal(got, want), (model, i)
    shapes = intops.kernel_shapes(graph, xs[:1])
    assert {s["op"] for s in shapes} == covered
    assert sum(s["calls"] for s in shapes) == sum(1 for op in graph.ops if intops.kernel_op(op))


def test_shape_lines_parse_as_ek_bench_reads_them():
    op = ig.Linear("x", "y", np.zeros((5, 3), np.int8), np.zeros(5), np.ones(5, np.int64), 1,
                   relu=True)
    assert intops.shape_line(op, {"x": np.zeros((2, 7, 3), np.int64)}) == "m=14 k=3 n=5 relu=1"
    sm = ig.Shiftmax("x", "y", 0.08)
    assert intops.shape_line(sm, {"x": np.zeros((4, 196, 196))}) == "rows=784 len=196 x0=-13"
