"""The CLI contract: commands, --json shapes, exit codes, one-paragraph errors."""

import json
import subprocess
import sys

from click.testing import CliRunner

from edgekit.cli import cli
from tests.conftest import TINY


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *args], capture_output=True,
                          text=True, timeout=600)


def test_models_json_lists_every_family():
    res = CliRunner().invoke(cli, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    families = {r["family"] for r in rows}
    assert {"efficientformer", "levit", "levit_conv", "mobileone", "nextvit"} <= families
    assert any(r["model"] == "efficientformer_l1" and r["tested"] for r in rows)
    assert not any(r["family"] == "levit" and r["model"].startswith("levit_conv") for r in rows)


def test_doctor_reports_onnx_stack():
    res = CliRunner().invoke(cli, ["doctor", "--json"])
    assert res.exit_code == 0
    report = json.loads(res.stdout)
    runtimes = {r["name"]: r for r in report["runtimes"]}
    for name in ("onnxruntime", "litert", "executorch"):
        assert runtimes[name]["ok"] and runtimes[name]["version"], runtimes[name]
    import platform

    if platform.system() != "Darwin":
        assert not runtimes["coreml"]["ok"] and "macOS" in runtimes["coreml"]["fix"]
    assert {e["name"] for e in report["exporters"] if e["ok"]} == {
        "onnx", "tflite", "executorch", "coreml", "ekr"}
    assert runtimes["ekr"]["ok"] and "edgekit" in runtimes["ekr"]["version"], runtimes["ekr"]
    (lib,) = report["kernels"]
    assert lib["ok"] and "scalar" in lib["version"], lib  # built at install
    assert all("fix" in t for t in report["tools"])


def test_export_validate_inspect_round_trip(tmp_path):
    res = run("export", TINY, "--to", "onnx", "--out", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    row = json.loads(res.stdout)  # stdout holds only the JSON document
    art = tmp_path / "tiny_convnet.fp32.onnx"
    assert row["artifact"] == str(art.resolve()) and row["validated"]
    assert sorted(p.name for p in art.iterdir()) == [
        "golden.npz", "layers.json", "manifest.json", "model.onnx", "model.ort",
        "model.required_operators_and_types.config"]
    assert row["passes"]["fold_batchnorm"] == 2 and row["passes"]["fold_layerscale"] == 1

    res = run("validate", str(art), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["validated"] is True

    res = run("inspect", str(art), "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert "BatchNormalization" not in info["ops"] and info["ops"]["Conv"] == 2
    assert info["params"] > 1000 and info["passes"][0]["name"] == "strip_dropout"

    res = run("inspect", str(art))
    assert res.returncode == 0 and "ops:" in res.stdout


def test_user_error_is_one_paragraph_without_traceback():
    res = run("export", "efficentformer_l1", "--out", "/tmp/unused-edgekit")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "unknown model 'efficentformer_l1'" in res.stderr
    assert "did you mean efficientformer_l1" in res.stderr
    res = run("--debug", "export", "efficentformer_l1", "--out", "/tmp/unused-edgekit")
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_unimplemented_quant_is_an_honest_error(tmp_path):
    res = CliRunner().invoke(cli, ["export", TINY, "--to", "executorch", "--quant", "int-only",
                                   "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "int-only is not available for executorch" in res.output
    assert not list(tmp_path.iterdir())


def test_opset_and_batch_options(tmp_path):
    res = CliRunner().invoke(cli, ["export", TINY, "--opset", "18", "--batch", "2", "--golden",
                                   "3", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "tiny_convnet.fp32.onnx/manifest.json").read_text())
    assert manifest["exporter"]["opset"] == 18 and manifest["exporter"]["batch"] == 2
    assert manifest["inputs"][0]["shape"] == [2, 3, 32, 32]
    assert manifest["validation"]["n_inputs"] == 4  # rounded up to whole batches
    assert manifest["validation"]["validated"] is True


def test_int8_validate_says_which_inputs_it_judged(tmp_path):
    res = run("export", TINY, "--to", "onnx", "--quant", "int8", "--calib-n", "16",
              "--out", str(tmp_path), "--json")
    assert res.returncode == 0, res.stderr
    art = tmp_path / "tiny_convnet.int8.onnx"
    res = run("validate", str(art), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["judged_inputs"] == 6 and report["n_inputs"] == 8
    assert -1.0 <= report["cosine_noise"] <= 1.0
    res = run("validate", str(art))
    assert "6 in-distribution inputs (the 2 noise inputs: cosine" in res.stdout, res.stdout
