"""ONNX artifacts of EfficientFormer-L1 and LeViT-128S, checked by running onnxruntime directly
(independent of edgekit's own validation) against timm fp32."""

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from edgekit.models.source import load_source

from edgekit.artifact import Artifact


@pytest.mark.parametrize("name", ["efficientformer_l1", "levit_128s"])
def test_artifact_matches_timm_fp32_in_onnxruntime(real_artifacts, name):
    art = Artifact.open(real_artifacts[name, "onnx"])
    m = art.manifest
    assert m.validation is not None and m.validation.validated
    assert m.weights["kind"] == "live-random"
    # Rebuild the timm model from the manifest's seed (no passes), feed the golden inputs.
    model = load_source(name, seed=m.weights["seed"]).model
    inputs, _ = art.load_golden()
    x = inputs["input"]
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    sess = ort.InferenceSession(str(art.model_path), providers=["CPUExecutionProvider"])
    got = np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    cos = (ref * got).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(got, axis=1)
    assert cos.min() >= 0.99999
    assert (ref.argmax(1) == got.argmax(1)).all()


@pytest.mark.parametrize("name", ["efficientformer_l1", "levit_128s"])
def test_no_batchnorm_and_no_attention_bias_gather(real_artifacts, name):
    proto = onnx.load(str(Artifact.open(real_artifacts[name, "onnx"]).model_path))
    ops = Counter(n.op_type for n in proto.graph.node)
    for fn in proto.functions:
        ops.update(n.op_type for n in fn.node)
    assert ops["BatchNormalization"] == 0
    assert ops["Gather"] == 0 and ops["GatherND"] == 0 and ops["GatherElements"] == 0
    assert ops["Conv"] > 0 and (ops["MatMul"] + ops["Gemm"]) > 0


def test_manifest_records_passes_versions_and_specs(real_artifacts):
    m = Artifact.open(real_artifacts["levit_128s", "onnx"]).manifest
    names = [p.name for p in m.passes]
    assert names[:3] == ["strip_dropout", "reparameterize", "bake_attention_bias"]
    assert all(p.max_rel < 1e-4 for p in m.passes)
    assert {"edgekit", "torch", "timm", "onnx", "onnxruntime"} <= set(m.versions)
    assert m.inputs[0].shape == (1, 3, 224, 224) and m.inputs[0].layout == "NCHW"
    assert m.outputs[0].shape == (1, 1000)
    assert m.exporter["opset"] >= 18
