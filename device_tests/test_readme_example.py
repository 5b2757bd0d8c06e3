"""The README's Python example, as written, on a small timm model: int8 to ONNX and TFLite with a
folder of real images, the .tflite run, validated on the emulated ARM device and benchmarked
over ssh (the loopback sshd); and (make test-all) the CLI writing the same manifests for the
same request — `make test` checks that on a module:function model (tests/test_api.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
from edgekit.cli import cli

from .conftest import SshDevice

MODEL = "efficientvit_m0"  # the smallest timm model of the supported families (FLOPs)


def _image_folder(folder: Path, n: int = 12) -> Path:
    """Real photos (scikit-learn's sample images), cropped, as JPEG files: `calib=./images`."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    folder.mkdir()
    rng = np.random.default_rng(0)
    photos = load_sample_images().images
    for i in range(n):
        photo = photos[i % len(photos)]
        y, x = rng.integers(0, photo.shape[0] - 240), rng.integers(0, photo.shape[1] - 240)
        Image.fromarray(photo[y:y + 240, x:x + 240]).save(folder / f"img_{i:02d}.jpg")
    return folder


def _manifest(path: Path) -> dict:
    m = json.loads((path / "manifest.json").read_text())
    m.pop("created")
    for c in m["exporter"].get("companions", []):
        c.pop("sha256")  # onnxruntime's ORT writer is not byte-deterministic (README)
    return m


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    tmp_path = tmp_path_factory.mktemp("readme")
    images = _image_folder(tmp_path / "images")
    out = tmp_path / "artifacts"
    arts = edgekit.export(MODEL, to=("onnx", "tflite"), quant="int8", calib=str(images),
                          out=out, calib_n=8, n_golden=4)
    return images, out, arts


def test_the_readme_example_on_a_timm_model(ssh_device: SshDevice, example) -> None:
    images, out, arts = example
    assert [a.manifest.format for a in arts] == ["onnx", "tflite"]
    assert all(a.manifest.validation.validated is True for a in arts)
    assert arts[0].manifest.exporter["quantization"]["calibration"]["set"] == str(images)

    a = edgekit.load(out / f"{MODEL}.int8.tflite")
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    y = a.run(x)
    assert y.shape == (1, 1000) and np.isfinite(y).all()
    arm = a.validate(device="qemu://cortex-a76")
    assert arm.validated is True, arm.reason
    r = a.bench(device=ssh_device.url, runs=5, warmup=1, min_seconds=0.1, rounds=2,
                identity=ssh_device.identity, known_hosts=ssh_device.known_hosts,
                python=sys.executable, timeout=300)
    assert r.median_ms and r.median_ms > 0 and r.row["validated"] is True
    assert r.runtime == "litert" and r.device == ssh_device.url


@pytest.mark.slow
def test_the_cli_writes_the_same_manifests_for_a_timm_model(example, tmp_path: Path) -> None:
    images, _, arts = example
    res = CliRunner().invoke(cli, ["export", MODEL, "--to", "onnx,tflite", "--quant", "int8",
                                   "--calib", str(images), "--calib-n", "8", "--golden", "4",
                                   "--out", str(tmp_path / "cli"), "--json"])
    assert res.exit_code == 0, res.output
    for art in arts:
        assert _manifest(art.path) == _manifest(tmp_path / "cli" / art.path.name)
