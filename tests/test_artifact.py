import json

import numpy as np
import pytest

from edgekit.artifact import (
    Artifact,
    Manifest,
    PassRecord,
    TensorSpec,
    ValidationReport,
    load_golden,
    load_golden_kinds,
    save_golden,
    sha256_file,
)
from edgekit.data import golden_kinds
from edgekit.errors import ArtifactError


def _manifest(sha: str) -> Manifest:
    return Manifest(
        format="onnx", file="model.onnx", sha256=sha, size_bytes=4, model="m",
        weights={"kind": "live-random", "seed": 0}, quant="fp32",
        inputs=(TensorSpec("input", (1, 3, 8, 8), "float32", "NCHW"),),
        outputs=(TensorSpec("logits", (1, 10), "float32"),),
        passes=(PassRecord("fold_batchnorm", 3, 1e-7, 2e-7),), versions={"edgekit": "0"},
        preprocessing={}, exporter={"opset": 20},
        validation=ValidationReport(1e-7, 1e-7, 1.0, 120.0, 1.0, 8, True, "onnxruntime",
                                    {"cosine": 0.99999}))


def test_manifest_json_round_trip():
    m = _manifest("ab")
    again = Manifest.from_dict(json.loads(m.to_json()))
    assert again == m
    keys = json.loads(m.to_json()).keys()
    for k in ("format", "file", "sha256", "model", "weights", "quant", "inputs", "outputs",
              "passes", "versions", "validation"):
        assert k in keys


def _write(tmp_path, payload=b"\x08\x01xx"):
    d = tmp_path / "m.fp32.onnx"
    d.mkdir()
    (d / "model.onnx").write_bytes(payload)
    (d / "manifest.json").write_text(_manifest(sha256_file(d / "model.onnx")).to_json())
    save_golden(d / "golden.npz", {"input": np.zeros((1, 3, 8, 8), np.float32)},
                {"logits": np.zeros((1, 10), np.float32)})
    return d


def test_open_checks_hash_and_layout(tmp_path):
    d = _write(tmp_path)
    art = Artifact.open(d)
    assert art.model_path == d / "model.onnx"
    inputs, outputs = art.load_golden()
    assert inputs["input"].shape == (1, 3, 8, 8) and outputs["logits"].shape == (1, 10)
    (d / "model.onnx").write_bytes(b"\x08\x01xy")
    with pytest.raises(ArtifactError, match="sha256"):
        Artifact.open(d)


@pytest.mark.parametrize("case", ["missing", "file", "no-manifest", "bad-json", "escape"])
def test_open_rejects_broken_artifacts(tmp_path, case):
    d = _write(tmp_path)
    target = d
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "file":
        target = d / "model.onnx"
    elif case == "no-manifest":
        (d / "manifest.json").unlink()
    elif case == "bad-json":
        (d / "manifest.json").write_text("{not json")
    elif case == "escape":
        raw = json.loads((d / "manifest.json").read_text())
        raw["file"] = "../../etc/passwd"
        (d / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ArtifactError):
        Artifact.open(target)


def test_golden_refuses_pickles(tmp_path):
    p = tmp_path / "golden.npz"
    np.savez(p, **{"in.input": np.array([object()], dtype=object)})
    with pytest.raises(ArtifactError):
        load_golden(p)


def test_export_records_what_each_golden_input_is(tiny_artifact):
    art = Artifact.open(tiny_artifact)
    kinds = art.golden_kinds()
    inputs, _ = art.load_golden()
    assert kinds is not None and len(kinds) == next(iter(inputs.values())).shape[0]
    assert kinds == golden_kinds(art.manifest.preprocessing, len(kinds))
    assert {"photo", "noise"} == set(kinds)


def test_golden_kinds_absent_or_malformed(tmp_path):
    p = tmp_path / "golden.npz"
    save_golden(p, {"input": np.zeros((2, 3), np.float32)}, {"out": np.zeros((2, 4), np.float32)})
    assert load_golden_kinds(p) is None  # written before kinds existed: every input judged
    np.savez(p, **{"in.input": np.zeros((2, 3)), "out.out": np.zeros((2, 4)),
                   "kind": np.array([["photo", "noise"]])})
    with pytest.raises(ArtifactError, match="input-kind"):
        load_golden_kinds(p)
