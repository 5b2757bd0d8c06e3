"""The precision ladder end to end: one `edgekit export` per mode over every target that has it,
each artifact validated in its own runtime against the fp32 model at the mode's threshold."""

import json

import pytest
from click.testing import CliRunner

from edgekit.artifact import Artifact
from edgekit.cli import cli
from edgekit.validate import THRESHOLDS

TINY = "tests.tiny_models:tiny_hybrid"


def _export(tmp_path, to, quant, *extra):
    res = CliRunner().invoke(cli, ["export", TINY, "--to", to, "--quant", quant, "--out",
                                   str(tmp_path), "--json", *extra])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    return {r["format"]: Artifact.open(r["artifact"]) for r in rows}


def _check(art, quant):
    m = art.manifest
    v = m.validation
    assert m.quant == quant
    q = m.exporter["quantization"]
    assert q["mode"] == quant and q["recipe"] == f"{quant}/{m.format}" and q["how"]
    if m.format == "coreml":  # Linux: structure only
        assert v.validated == "structure-only (numerics need macOS)"
        return q
    assert v.validated is True, v
    assert v.cosine >= THRESHOLDS[quant]["cosine"]
    return q


def test_fp16_on_every_target(tmp_path):
    arts = _export(tmp_path, "onnx,tflite,executorch,coreml", "fp16")
    assert set(arts) == {"onnx", "tflite", "executorch", "coreml"}
    for art in arts.values():
        _check(art, "fp16")
    import onnx

    model = onnx.load(str(arts["onnx"].model_path))
    types = {i.data_type for i in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert arts["tflite"].manifest.inputs[0].dtype == "float32"
    assert arts["coreml"].manifest.exporter["compute_precision"] == "fp16"


def test_w8_on_every_target(tmp_path):
    arts = _export(tmp_path, "onnx,tflite,executorch,coreml", "w8")
    for art in arts.values():
        _check(art, "w8")
    import onnx

    model = onnx.load(str(arts["onnx"].model_path))
    assert any(i.data_type == onnx.TensorProto.INT8 for i in model.graph.initializer)
    assert "DequantizeLinear" in {n.op_type for n in model.graph.node}
    assert arts["coreml"].manifest.exporter["quantization"]["dequantize_ops"]


def test_w8a16_on_onnx_and_tflite(tmp_path):
    arts = _export(tmp_path, "onnx,tflite", "w8a16", "--calib-n", "16")
    for art in arts.values():
        q = _check(art, "w8a16")
        assert q["calibration"]["samples"] == 16
    import onnx

    model = onnx.load(str(arts["onnx"].model_path))
    zero_points = {i.data_type for i in model.graph.initializer if "zero_point" in i.name}
    assert onnx.TensorProto.INT16 in zero_points


@pytest.mark.parametrize("fmt", ["tflite", "executorch", "coreml"])
def test_mixed_int16_is_refused_where_the_int8_quantizer_has_no_int16(tmp_path, fmt):
    res = CliRunner().invoke(cli, ["export", TINY, "--to", fmt, "--quant", "int8",
                                   "--mixed", "int16", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "--mixed int16 is not available" in res.output
    assert not list(tmp_path.iterdir())
