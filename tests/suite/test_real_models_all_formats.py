"""Acceptance: EfficientFormer-L1 and LeViT-128S `--to all`; ONNX, TFLite and ExecuTorch run
directly in their runtimes (not through edgekit's validation) match timm fp32 at cos ≥ 0.9999;
the Core ML package passes the structural checks."""

import numpy as np
import pytest
import torch
from edgekit.models.source import load_source

from edgekit.artifact import Artifact
from tests.conftest import REAL_MODELS


def _run_direct(fmt: str, path, x: np.ndarray) -> np.ndarray:
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path))
        interp.allocate_tensors()
        i, o = interp.get_input_details()[0], interp.get_output_details()[0]
        outs = []
        for k in range(len(x)):
            interp.set_tensor(i["index"], x[k:k + 1])
            interp.invoke()
            outs.append(interp.get_tensor(o["index"]).copy())
        return np.concatenate(outs)
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(path)).load_method("forward")
    return np.concatenate([method.execute([torch.from_numpy(x[k:k + 1])])[0].numpy()
                           for k in range(len(x))])


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "executorch"])
@pytest.mark.parametrize("name", REAL_MODELS)
def test_runtime_output_matches_timm(real_artifacts, name, fmt):
    art = Artifact.open(real_artifacts[name, fmt])
    assert art.manifest.validation.validated is True
    inputs, _ = art.load_golden()
    x = next(iter(inputs.values()))
    model = load_source(name, seed=art.manifest.weights["seed"]).model
    nchw = x if art.manifest.inputs[0].layout != "NHWC" else x.transpose(0, 3, 1, 2)
    with torch.no_grad():
        ref = model(torch.from_numpy(np.ascontiguousarray(nchw))).numpy()
    got = _run_direct(fmt, art.model_path, x)
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() >= 0.9999, cos


@pytest.mark.parametrize("name", REAL_MODELS)
def test_coreml_package_passes_structural_checks(real_artifacts, name):
    import platform

    art = Artifact.open(real_artifacts[name, "coreml"])
    v = art.manifest.validation
    if platform.system() != "Darwin":
        assert v.validated == "structure-only (numerics need macOS)" and not v.reason
    else:
        assert v.validated is True


@pytest.mark.parametrize("name", REAL_MODELS)
def test_delegation_is_recorded(real_artifacts, name):
    for fmt in ("tflite", "executorch"):
        d = Artifact.open(real_artifacts[name, fmt]).manifest.exporter["delegation"]
        assert d["delegated"] > 0 and d["share"] > 0.3, (fmt, d)
    for fmt in ("onnx", "tflite", "executorch", "coreml"):
        support = Artifact.open(real_artifacts[name, fmt]).manifest.exporter["support"]
        assert support["ok"], (fmt, support)
