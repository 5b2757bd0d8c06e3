"""`--quant int-only` end to end on a model trained on real data: an integer-only ONNX file that
onnxruntime runs bit-exactly like the numpy reference, and that keeps top-1."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from edgekit.accuracy import evaluate_artifact
from edgekit.artifact import Artifact
from edgekit.errors import UsageError
from edgekit.inspect import integer_only_violations
from edgekit.pipeline import ExportRequest, export_model

MODEL = "fmnist_levit"


@pytest.fixture(scope="module")
def int_only(tmp_path_factory: pytest.TempPathFactory) -> Artifact:
    (o,) = export_model(ExportRequest(model=MODEL, formats=("onnx",), quant="int-only",
                                      out=tmp_path_factory.mktemp("intonly")))
    return o.artifact


def test_artifact_is_validated_and_integer_only(int_only):
    m = int_only.manifest
    assert m.quant == "int-only" and m.validation.validated is True, m.validation.reason
    assert m.exporter["integer_only"] is True
    assert {"Shiftmax", "Hardswish", "MatMul", "Linear", "Conv2d"} <= set(m.exporter["int_ops"])
    assert integer_only_violations(int_only.path) == []


def test_onnxruntime_equals_the_numpy_reference_bit_for_bit(int_only):
    from edgekit.models.source import load_source

    from edgekit import fashion_mnist as fm
    from edgekit.intonly.convert import convert
    from edgekit.intonly.graph import run_reference
    from edgekit.pipeline import _calibration
    from edgekit.quant.config import QuantConfig
    from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline

    src = load_source(MODEL)
    _, calib, _ = _calibration(QuantConfig(), src.data_config, lambda s: None)
    images, _ = fm.load("test")
    x = fm.to_model_input(images[:50], 64, tuple(src.data_config["mean"]),
                          tuple(src.data_config["std"]))
    example = torch.from_numpy(x[:1])
    DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([example, example]))
    graph = convert(src.model, example, calib.samples,
                    percentile=int_only.manifest.exporter["activation_percentile"])
    sess = ort.InferenceSession(str(int_only.model_path), providers=["CPUExecutionProvider"])
    for i in range(50):
        got = sess.run(None, {"input": x[i:i + 1]})[0]
        assert np.array_equal(got, run_reference(graph, x[i:i + 1])), i


def test_int_only_keeps_top1(int_only):
    from edgekit.models.fmnist import SMALL_CONFIGS, evaluate_torch
    from edgekit.models.source import load_source

    fp32 = 100 * evaluate_torch(load_source(MODEL).model, SMALL_CONFIGS.get(MODEL), limit=1000)
    rep = evaluate_artifact(int_only.path, limit=1000)
    assert abs(rep.top1 - fp32) <= 1.0, (rep.top1, fp32)


def test_int_only_is_refused_for_formats_without_it(tmp_path):
    with pytest.raises(UsageError, match="int-only is not available for executorch"):
        export_model(ExportRequest(model=MODEL, formats=("executorch",), quant="int-only",
                                   out=tmp_path))


def test_efficientformer_translates_gelu_layernorm_and_pool_mixer_bit_exactly():
    """EfficientFormer's ops (GELU, I-LayerNorm, count_include_pad=False pool mixer, LayerScale
    on a non-linear branch, sub) on the trained small config: ORT == reference, fp32-faithful."""
    import onnxruntime as ort
    from edgekit.models.source import load_source

    from edgekit import fashion_mnist as fm
    from edgekit.calibration import calibration_set
    from edgekit.intonly.convert import convert
    from edgekit.intonly.graph import float_violations, run_reference, to_onnx
    from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline

    src = load_source("fmnist_efficientformer")
    size = src.data_config["input_size"][-1]
    cal = calibration_set("fmnist", src.data_config, 32)
    x = torch.from_numpy(cal.samples[:1])
    DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([x, x]))
    graph = convert(src.model, x, cal.samples)
    kinds = {type(op).__name__ for op in graph.ops}
    assert {"ShiftGelu", "LayerNorm", "AvgPool", "MulConst", "Shiftmax"} <= kinds
    model = to_onnx(graph)
    assert float_violations(model) == []
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    images, _ = fm.load("test")
    xs = fm.to_model_input(images[:20], size, tuple(src.data_config["mean"]),
                           tuple(src.data_config["std"]))
    with torch.no_grad():
        ref_fp32 = src.model(torch.from_numpy(xs)).numpy()
    cos = []
    for i in range(20):
        want = run_reference(graph, xs[i:i + 1])
        assert np.array_equal(sess.run(None, {"input": xs[i:i + 1]})[0], want), i
        r = ref_fp32[i]
        cos.append(float(want[0] @ r / np.linalg.norm(want[0]) / np.linalg.norm(r)))
    assert np.mean(cos) > 0.99, cos


def test_mobilevit_hybrid_is_integer_only_bit_exact_and_keeps_top1(tmp_path):
    """The hybrid: MobileViT's SiLU convs, unfold/fold reshapes, timm attention (unbind, explicit
    matmul/softmax), LayerNorm, the conv↔transformer concat, global pooling."""
    import onnxruntime as ort
    from edgekit.models.fmnist import SMALL_CONFIGS, evaluate_torch
    from edgekit.models.source import load_source

    from edgekit import fashion_mnist as fm
    from edgekit.intonly.convert import convert
    from edgekit.intonly.graph import ShiftGelu, run_reference
    from edgekit.pipeline import _calibration
    from edgekit.quant.config import QuantConfig
    from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline

    name = "fmnist_mobilevit"
    (o,) = export_model(ExportRequest(model=name, formats=("onnx",), quant="int-only",
                                      out=tmp_path))
    m = o.artifact.manifest
    assert m.validation.validated is True, m.validation.reason
    assert integer_only_violations(o.artifact.path) == []
    assert {"Concat", "ShiftGelu", "Shiftmax", "LayerNorm", "Mean"} <= set(m.exporter["int_ops"])
    assert set(m.exporter["holdout_cosine"]) == {"absmax", "percentile 99.9"}
    # rebuild the integer graph the artifact was made from; ORT must match it bit for bit
    src = load_source(name)
    _, calib, _ = _calibration(QuantConfig(), src.data_config, lambda s: None)
    images, _ = fm.load("test")
    xs = fm.to_model_input(images[:20], src.data_config["input_size"][-1],
                           tuple(src.data_config["mean"]), tuple(src.data_config["std"]))
    example = torch.from_numpy(xs[:1])
    DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([example, example]))
    graph = convert(src.model, example, calib.samples,
                    percentile=m.exporter["activation_percentile"])
    assert any(isinstance(op, ShiftGelu) and op.alpha == 1.0 for op in graph.ops)  # SiLU
    sess = ort.InferenceSession(str(o.artifact.model_path), providers=["CPUExecutionProvider"])
    for i in range(20):
        assert np.array_equal(sess.run(None, {"input": xs[i:i + 1]})[0],
                              run_reference(graph, xs[i:i + 1])), i
    fp32 = 100 * evaluate_torch(load_source(name).model, SMALL_CONFIGS.get(name), limit=1000)
    rep = evaluate_artifact(o.artifact.path, limit=1000)
    assert abs(rep.top1 - fp32) <= 1.0, (rep.top1, fp32)
