"""The device agent's own sanity check of an artifact's outputs (edgekit/bench/agent.py runs
on devices without edgekit, so it repeats validate.py's rule for noise inputs)."""

import json

import numpy as np
import pytest

from edgekit.artifact import save_golden
from edgekit.bench import agent
from edgekit.validate import CALIBRATED_MODES


class _Replay:
    """A session returning prepared outputs batch by batch."""

    def __init__(self, outputs: np.ndarray, batch: int) -> None:
        self.outputs, self.batch, self.at = outputs, batch, 0

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        out = self.outputs[self.at:self.at + len(x)]
        self.at += len(x)
        return [out]


def _artifact(tmp_path, quant: str, kinds):
    ref = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
    save_golden(tmp_path / "golden.npz", {"input": np.zeros((8, 3), np.float32)},
                {"out": ref}, kinds)
    (tmp_path / "manifest.json").write_text(json.dumps({"quant": quant}))
    return ref


def test_the_agent_and_validation_agree_on_which_modes_are_calibrated():
    assert agent.CALIBRATED_MODES == CALIBRATED_MODES


def test_the_agent_leaves_noise_inputs_out_for_int8_only(tmp_path):
    kinds = ("photo",) * 6 + ("noise",) * 2
    ref = _artifact(tmp_path, "int8", kinds)
    got = ref.copy()
    got[6:] = -got[6:]  # wrong only on the noise inputs
    x, y, judged = agent.load_golden(str(tmp_path))
    assert judged.tolist() == [True] * 6 + [False] * 2
    ok, worst = agent.check_outputs(_Replay(got, 2), x, y, 2, 0.99, judged)
    assert ok and worst > 0.999
    _artifact(tmp_path, "fp32", kinds)
    x, y, judged = agent.load_golden(str(tmp_path))
    assert judged.all()
    ok, worst = agent.check_outputs(_Replay(got, 2), x, y, 2, 0.99, judged)
    assert not ok and worst < 0


def test_an_artifact_without_kinds_is_checked_on_every_input(tmp_path):
    _artifact(tmp_path, "int8", None)
    assert agent.load_golden(str(tmp_path))[2].all()


def test_the_agent_loads_only_listed_companion_files_and_bounded_batches():
    from edgekit.bench.agent import model_file, pick_batch

    manifest = {"file": "model.onnx", "inputs": [{"shape": [-1, 3, 8, 8]}],
                "exporter": {"companions": [{"file": "model.ort"}], "dynamic_batch": {"max": 4}}}
    assert model_file(manifest, None) == "model.onnx"
    assert model_file(manifest, "model.ort") == "model.ort"
    for bad in ("../model.ort", "/etc/passwd", "other.ort"):
        with pytest.raises(SystemExit, match="not a companion file"):
            model_file(manifest, bad)
    assert pick_batch(manifest, None) == 1 and pick_batch(manifest, 4) == 4
    with pytest.raises(SystemExit, match="bound 4"):
        pick_batch(manifest, 5)
    static = {**manifest, "inputs": [{"shape": [2, 3, 8, 8]}]}
    assert pick_batch(static, None) == 2
    with pytest.raises(SystemExit, match=r"static \(2\)"):
        pick_batch(static, 3)


def test_the_device_payload_leaves_out_companion_files(tmp_path):
    """ssh/adb get the model file, manifest and golden I/O: not model.ort and its config."""
    import io
    import tarfile

    from edgekit.bench.collectors import _tar_payload

    art = tmp_path / "m.fp32.onnx"
    art.mkdir()
    for name in ("model.onnx", "golden.npz", "model.ort", "model.required_ops.config"):
        (art / name).write_bytes(b"x")
    (art / "manifest.json").write_text(json.dumps({"file": "model.onnx", "exporter": {
        "companions": [{"file": "model.ort", "operator_config": "model.required_ops.config"}]}}))
    with tarfile.open(fileobj=io.BytesIO(_tar_payload([art]))) as tar:
        names = sorted(tar.getnames())
    assert names == ["a0", "a0/golden.npz", "a0/manifest.json", "a0/model.onnx", "agent.py",
                     "agent_profile.py"]
