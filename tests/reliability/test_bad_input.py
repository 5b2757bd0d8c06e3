"""Bad input and faults (../shared/RELIABILITY.md): typed error, non-zero exit, nothing partial
at the final path, earlier results intact."""

import glob
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper

from edgekit.artifact import Artifact, sha256_file
from edgekit.errors import ArtifactError, DiskFull, UnsafeCheckpoint, UnsafePath, WeightsError
from edgekit.inspect import inspect_path
from edgekit.pipeline import ExportRequest, export_model
from edgekit.validate import validate_artifact
from tests.conftest import TINY
from tests.tiny_models import tiny_convnet


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, timeout=600, **kw)


# --- weights ---------------------------------------------------------------------------------

class Payload:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch.save", "raw-pickle"])
def test_malicious_pickle_is_refused_and_never_executed(tmp_path, writer):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    payload = {"stem.0.weight": Payload(str(marker))}
    if writer == "torch.save":
        torch.save(payload, evil)
    else:
        evil.write_bytes(pickle.dumps(payload))
    # Prove the payload is live: plain pickle would execute it.
    assert not marker.exists()
    from edgekit.models.source import load_source

    with pytest.raises(UnsafeCheckpoint, match="refused to unpickle"):
        load_source(TINY, weights=evil)
    assert not marker.exists()
    res = cli("export", TINY, "--weights", str(evil), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "refused to unpickle" in res.stderr
    assert not marker.exists() and not (tmp_path / "out" / "tiny_convnet.fp32.onnx").exists()


def test_wrong_weights_name_the_tensor(tmp_path):
    from safetensors.torch import save_file

    state = tiny_convnet().state_dict()
    state["head.weight"] = torch.zeros(7, 16)
    bad = tmp_path / "bad.safetensors"
    save_file(state, bad)
    from edgekit.models.source import load_source

    with pytest.raises(WeightsError, match=r"head.weight \(file \(7, 16\) vs model \(10, 16\)\)"):
        load_source(TINY, weights=bad)
    good = tmp_path / "good.safetensors"
    save_file(tiny_convnet().state_dict(), good)
    src = load_source(TINY, weights=good)
    assert src.weights["kind"] == "file" and src.weights["sha256"] == sha256_file(good)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsError, match="safetensors"):
        load_source(TINY, weights=tmp_path / "junk.safetensors")


# --- output paths and atomic replacement -------------------------------------------------------

def test_output_symlink_escape_is_refused(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "tiny_convnet.fp32.onnx").symlink_to(outside)
    res = cli("export", TINY, "--out", str(out))
    assert res.returncode == 2 and "outside" in res.stderr
    assert not list(outside.iterdir())


def test_bad_names_refused():
    with pytest.raises(UnsafePath):
        from edgekit.fsutil import child_path

        child_path(Path("/tmp"), "../etc")


def test_interrupted_export_keeps_old_artifact_and_next_run_cleans_up(tmp_path):
    (first,) = export_model(ExportRequest(model=TINY, out=tmp_path, seed=1))
    old_sha = first.artifact.manifest.sha256
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "export", TINY, "--out",
                             str(tmp_path), "--seed", "2", "--golden", "64"],
                            start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    pattern = str(tmp_path / ".tiny_convnet.fp32.onnx.tmp-*")
    deadline = time.monotonic() + 120
    while not glob.glob(pattern) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    assert glob.glob(pattern), "the export should be mid-way (temp dir present)"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    art = Artifact.open(tmp_path / "tiny_convnet.fp32.onnx")  # verifies sha256 too
    assert art.manifest.sha256 == old_sha and art.manifest.weights["seed"] == 1
    (second,) = export_model(ExportRequest(model=TINY, out=tmp_path, seed=3))
    assert second.artifact.manifest.weights["seed"] == 3
    assert not glob.glob(pattern)


def test_disk_full_is_named_and_leaves_nothing(small_tmpfs):
    mnt = small_tmpfs("64k")
    with pytest.raises(DiskFull, match="ENOSPC"):
        export_model(ExportRequest(model=TINY, out=mnt))
    assert [p.name for p in mnt.iterdir()] == [".tiny_convnet.fp32.onnx.lock"]


# --- corrupt / foreign / crafted model files ---------------------------------------------------

def _copy(tiny_artifact: Path, tmp_path: Path) -> Path:
    dst = tmp_path / tiny_artifact.name
    shutil.copytree(tiny_artifact, dst)
    return dst


def test_truncated_onnx_rejected_by_inspect_and_validate(tiny_artifact, tmp_path):
    art = _copy(tiny_artifact, tmp_path)
    model = art / "model.onnx"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ArtifactError, match="sha256"):
        Artifact.open(art)
    with pytest.raises(ArtifactError, match="truncated or corrupt|fails onnx.checker"):
        inspect_path(model)
    # Even when the manifest is made consistent with the damaged file, the runtime child refuses.
    manifest = json.loads((art / "manifest.json").read_text())
    manifest["sha256"] = sha256_file(model)
    (art / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError):
        validate_artifact(Artifact.open(art))
    res = cli("validate", str(art))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "error EK400" in res.stderr


def test_foreign_file_is_not_an_onnx_file(tmp_path):
    png = Path(__import__("skimage").__file__).parent / "data" / "coffee.png"
    fake = tmp_path / "model.onnx"
    fake.write_bytes(png.read_bytes())
    with pytest.raises(ArtifactError, match="not an ONNX file"):
        inspect_path(fake)
    res = cli("inspect", str(tmp_path / "x.bin"))
    assert res.returncode == 2 and "no such file" in res.stderr


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "link/data.bin"])
def test_external_data_outside_the_model_dir_is_refused(tmp_path, location):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(np.ones(4, np.float32).tobytes())
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "link").symlink_to(tmp_path)
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "16")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])], [w])
    path = model_dir / "model.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(ArtifactError, match="outside the model directory"):
        inspect_path(path)


def test_nan_weights_fail_validation_but_artifact_is_written(tmp_path):
    from safetensors.torch import save_file

    state = tiny_convnet().state_dict()
    state["head.bias"] = torch.full((10,), float("nan"))
    w = tmp_path / "nan.safetensors"
    save_file(state, w)
    res = cli("export", TINY, "--weights", str(w), "--out", str(tmp_path / "out"), "--json",
              "--no-reparam")
    assert res.returncode == 3, res.stderr
    assert "NaN" in res.stderr and "validated: false" in res.stderr
    manifest = json.loads((tmp_path / "out/tiny_convnet.fp32.onnx/manifest.json").read_text())
    assert manifest["validation"]["validated"] is False


# --- calibration -----------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["constant", "unreadable"])
def test_bad_calibration_image_is_named_and_nothing_is_written(tmp_path, bad):
    from PIL import Image

    from edgekit.data import builtin_photo_paths

    calib = tmp_path / "calib"
    calib.mkdir()
    for p in builtin_photo_paths()[:4]:
        shutil.copy(p, calib / p.name)
    if bad == "constant":
        Image.new("RGB", (80, 80), (90, 90, 90)).save(calib / "zz_flat.png")
    else:
        (calib / "zz_flat.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    out = tmp_path / "out"
    res = cli("export", "fmnist_levit", "--to", "onnx", "--quant", "int8", "--calib",
              str(calib), "--out", str(out))
    assert res.returncode == 2, res.stderr
    assert "zz_flat.png" in res.stderr and "EK700" in res.stderr
    assert not out.exists() or not any(out.iterdir())
