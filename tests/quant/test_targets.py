"""int8 on every target, on a model trained on real data (fmnist_levit): the files really hold
int8 compute, pass validation in their runtimes, and keep top-1 on held-out images."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from edgekit.accuracy import evaluate_artifact
from edgekit.artifact import Artifact
from edgekit.errors import MissingDependency

from .conftest import SMALL

N_EVAL = 1000  # first 1000 test images: enough to see a collapse, seconds per runtime


@pytest.fixture(scope="module")
def fp32_top1() -> float:
    from edgekit.models.fmnist import SMALL_CONFIGS, evaluate_torch
    from edgekit.models.source import load_source

    src = load_source(SMALL)
    return 100 * evaluate_torch(src.model, SMALL_CONFIGS.get(SMALL), limit=N_EVAL)


def test_manifest_records_the_quantizer_and_calibration(int8_artifacts):
    for fmt, path in int8_artifacts.items():
        m = Artifact.open(path).manifest
        q = m.exporter["quantization"]
        assert m.quant == "int8"
        assert q["calibration"]["set"] == "fmnist-train" and q["calibration"]["samples"] == 32
        assert q["calibration"]["holdout"] == 16
        assert q["config"]["calib_n"] == 32 and q["quantizer"]
        if fmt != "coreml":
            assert m.validation.validated is True, (fmt, m.validation.reason)


def test_onnx_file_holds_fused_int8_ops(int8_artifacts):
    import onnx

    proto = onnx.load(str(Artifact.open(int8_artifacts["onnx"]).model_path))
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0
    weights = {i.name: i for i in proto.graph.initializer}
    int8_weights = [w for w in weights.values() if w.data_type == onnx.TensorProto.INT8]
    assert len(int8_weights) >= 10  # conv/linear weights stored int8 (per-channel)
    # the speed plan: no QDQ pair feeds LayerNorm / Softmax / attention matmuls
    q = Artifact.open(int8_artifacts["onnx"]).manifest.exporter["quantization"]
    assert q["plan"] == "fused" and q["op_types"] == ["Conv", "Gemm", "MatMul"]


def test_tflite_is_full_integer_with_float_boundary(int8_artifacts):
    from edgekit.exporters.tflite import TFLiteExporter

    info = TFLiteExporter.describe(Artifact.open(int8_artifacts["tflite"]).model_path)
    assert info["inputs"][0]["dtype"] == "float32" and info["outputs"][0]["dtype"] == "float32"
    assert info["ops"].get("QUANTIZE", 0) >= 1 and info["ops"].get("DEQUANTIZE", 0) >= 1
    assert info["initializer_dtypes"].get("int8", 0) >= 10


def test_executorch_program_delegates_quantized_ops(int8_artifacts):
    m = Artifact.open(int8_artifacts["executorch"]).manifest
    assert m.exporter["delegation"]["share"] > 0.5
    assert m.size_bytes < 0.5 * 2_000_000  # int8 weights: well under the 2 MB fp32 checkpoint


def test_coreml_is_w8a8_and_says_prediction_needs_macos(int8_artifacts):
    from edgekit.exporters.coreml import CoreMLExporter

    art = Artifact.open(int8_artifacts["coreml"])
    path = art.model_path
    assert "affine uint8 activations" in art.manifest.exporter["quantization"]["quantizer"]
    ops = CoreMLExporter.describe(path)["ops"]
    assert any("quantize" in op for op in ops) and any("dequantize" in op for op in ops), ops
    with pytest.raises(MissingDependency, match="coreml is not available") as exc:
        evaluate_artifact(int8_artifacts["coreml"], limit=10)
    assert "macOS" in exc.value.hint


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "executorch"])
def test_int8_keeps_top1_on_held_out_fashion_mnist(int8_artifacts, fp32_top1, fmt):
    rep = evaluate_artifact(int8_artifacts[fmt], limit=N_EVAL)
    assert rep.n == N_EVAL and rep.quant == "int8"
    assert abs(rep.top1 - fp32_top1) <= 1.5, (fmt, rep.top1, fp32_top1)


def test_int8_io_tflite_takes_int8_and_the_session_applies_its_scale(tmp_path):
    from edgekit.exporters.tflite import TFLiteExporter

    from edgekit.pipeline import ExportRequest, export_model
    from edgekit.quant.config import QuantConfig

    (o,) = export_model(ExportRequest(model=SMALL, formats=("tflite",), quant="int8",
                                      out=tmp_path, quant_config=QuantConfig(
                                          calib_n=16, int8_io=True, keep_float="none")))
    info = TFLiteExporter.describe(o.artifact.model_path)
    assert info["inputs"][0]["dtype"] == "int8" and info["outputs"][0]["dtype"] == "int8"
    assert info["inputs"][0]["quantization"]["scale"][0] > 0
    spec = o.artifact.manifest.inputs[0]
    assert spec.dtype == "int8" and spec.quantization == info["inputs"][0]["quantization"]
    assert o.validation.validated is True, o.validation.reason
    # the on-device agent feeds the file int8 (quantized once, outside the timed loop)
    from edgekit.bench.collectors import BenchConfig
    from edgekit.bench.run import run_bench

    (r,) = run_bench([o.artifact.path], cfg=BenchConfig(runs=5, min_seconds=0.1, rounds=2,
                                                        retries=0))
    assert r["validated"] is True and r["input_dtype"] == "int8" and r["median_ms"] > 0


def test_cli_export_int8_then_accuracy(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["export", SMALL, "--to", "onnx", "--quant", "int8", "--calib-n",
                              "16", "--calib-method", "minmax", "--keep-float", "softmax,add",
                              "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    row = json.loads(res.stdout)
    q = Artifact.open(row["artifact"]).manifest.exporter["quantization"]
    assert q["calib_method"] == "minmax" and q["config"]["keep_float"] == ["softmax", "add"]
    res = runner.invoke(cli, ["accuracy", row["artifact"], "--limit", "200", "--json"])
    assert res.exit_code == 0, res.output
    acc = json.loads(res.stdout)
    assert acc["n"] == 200 and 75.0 <= acc["top1"] <= 100.0


def test_accuracy_refuses_models_not_trained_on_the_data(tiny_artifact):
    from edgekit.errors import UsageError

    with pytest.raises(UsageError, match="was not trained on fmnist"):
        evaluate_artifact(tiny_artifact)


def test_calib_method_not_offered_by_a_target_is_refused_before_writing(tmp_path):
    from edgekit.errors import UsageError
    from edgekit.pipeline import ExportRequest, export_model
    from edgekit.quant.config import QuantConfig

    with pytest.raises(UsageError, match="entropy is not available for executorch"):
        export_model(ExportRequest(model=SMALL, formats=("executorch",), quant="int8",
                                   out=tmp_path, quant_config=QuantConfig(
                                       calib_n=8, calib_method="entropy")))
    assert not list(tmp_path.glob("*.executorch"))


def test_coreml_pattern_graphs_are_built_once_and_each_caller_gets_its_own_copy():
    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as utils

    from edgekit.quant.targets import _memoize_coreml_patterns

    _memoize_coreml_patterns()
    _memoize_coreml_patterns()  # idempotent: never wraps twice
    assert utils.get_linear_pattern.__wrapped__.__name__ == "get_linear_pattern"
    first = utils.get_linear_pattern(None, False)
    second = utils.get_linear_pattern(None, False)
    assert first is not second and first.code == second.code
    # the matcher rewrites a pattern's output in place: that must not reach the next caller
    utils._SubgraphMatcherWithNameNodeMap(first, ignore_literals=True)
    assert utils.get_linear_pattern(None, False).code == second.code != first.code
