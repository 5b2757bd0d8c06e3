"""`edgekit profile` and `edgekit diff` on real artifacts of the trained Fashion-MNIST LeViT
(fp32 and int8, ONNX and TFLite): every op tied to a source module, profiles that add up, and
layer diffs that find what int8 changed; also on the emulated ARM device."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli import cli
from edgekit.errors import ArtifactError, UsageError
from edgekit.layers.diff import diff_artifact
from edgekit.layers.modules import LAYERS_NAME, LayerMap
from edgekit.layers.profile import profile_artifact
from tests.conftest import exported_once
from tests.report.test_report import assert_renders_in_chromium

MODEL = "fmnist_levit"
CELLS = [(q, f) for q in ("fp32", "int8") for f in ("onnx", "tflite")]


@pytest.fixture(scope="session")
def layer_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from edgekit.pipeline import ExportRequest, export_model
    from edgekit.quant.config import QuantConfig

    def export(out: Path) -> dict[str, Path]:
        paths = {}
        for quant in ("fp32", "int8"):
            for o in export_model(ExportRequest(
                    model=MODEL, formats=("onnx", "tflite"), quant=quant, out=out,
                    quant_config=QuantConfig(calib_n=32) if quant == "int8" else None)):
                paths[f"{quant}/{o.artifact.manifest.format}"] = o.artifact.path
        return paths

    return exported_once(tmp_path_factory, "layers", export)


@pytest.mark.parametrize(("quant", "fmt"), CELLS)
def test_every_op_is_tied_to_a_source_module(layer_artifacts, quant, fmt):
    layers = LayerMap.load(layer_artifacts[f"{quant}/{fmt}"])
    assert layers is not None and layers.format == fmt
    assert layers.ops and layers.resolved["unresolved"] == 0
    assert all(layers.in_source(m) for m in layers.ops.values()), \
        {m for m in layers.ops.values() if not layers.in_source(m)}
    # ops really spread over the model, not all on the root
    assert {"stem.conv1", "head"} <= set(layers.ops.values())


@pytest.mark.parametrize(("quant", "fmt"), CELLS)
def test_profile_adds_up_and_names_modules(layer_artifacts, quant, fmt):
    p = profile_artifact(layer_artifacts[f"{quant}/{fmt}"], runs=5, warmup=2, threads=1)
    rows = p["rows"]
    assert rows and {"op", "module", "ms", "share", "delegated", "dtype"} <= set(rows[0])
    assert sum(r["share"] for r in rows) == pytest.approx(1.0)
    assert sum(b["ms"] for b in p["by_block"]) == pytest.approx(p["total_ms"])
    assert sum(b["ops"] for b in p["by_op_type"]) == len(rows)
    assert p["module_coverage"] >= 0.9
    assert p["end_to_end_median_ms"] > 0 and p["gap"] == pytest.approx(
        p["total_ms"] / p["end_to_end_median_ms"] - 1)
    convs = [r for r in rows if r["module"] == "stem.conv1" and "onv" in r["op"]]
    assert convs, "the first conv is a row of its own, tied to stem.conv1"
    if quant == "int8":  # the int8 kernels ran, and the profile says so
        assert any(r["dtype"] in ("int8", "uint8") for r in rows)
    if fmt == "tflite":
        assert any(r["delegated"] for r in rows)  # XNNPACK's operators, inside the delegate


@pytest.mark.parametrize("fmt", ["onnx", "tflite"])
def test_fp32_diff_matches_torch_at_every_layer(layer_artifacts, fmt):
    d = diff_artifact(layer_artifacts[f"fp32/{fmt}"])
    assert d["first_below"] is None
    assert d["compared"] >= 50
    assert min(r["cosine"] for r in d["layers"]) > 0.9999
    assert any(r["module"] == "" for r in d["layers"])  # the model's output is a row


def test_int8_diff_degrades_with_depth_and_agrees_between_references(layer_artifacts):
    vs_torch = diff_artifact(layer_artifacts["int8/onnx"])
    rows = {r["module"]: r for r in vs_torch["layers"]}
    assert rows["stem.conv1"]["cosine"] > rows[""]["cosine"] - 0.01  # shallow is cleaner
    assert rows[""]["cosine"] >= 0.98  # the validated output
    assert min(r["cosine"] for r in vs_torch["layers"]) < 0.9999  # int8 changed something
    assert vs_torch["inputs"].startswith("golden photos")  # calibrated: in-distribution
    # against the fp32 artifact instead of torch: the same layers, nearly the same numbers
    vs_fp32 = diff_artifact(layer_artifacts["int8/onnx"],
                            against=str(layer_artifacts["fp32/onnx"]))
    other = {r["module"]: r["cosine"] for r in vs_fp32["layers"]}
    assert set(other) == set(rows)
    assert all(abs(other[m] - rows[m]["cosine"]) < 1e-3 for m in other)


def test_cli_json_contract_and_report(layer_artifacts, tmp_path):
    runner = CliRunner()
    art = str(layer_artifacts["int8/tflite"])
    res = runner.invoke(cli, ["profile", art, "--runs", "3", "--json", "--out",
                              str(tmp_path / "p.json")])
    assert res.exit_code == 0, res.output
    p = json.loads(res.output[res.output.index("{"):])
    assert {"rows", "total_ms", "end_to_end_median_ms"} <= set(p)
    res = runner.invoke(cli, ["diff", art, "--json", "--out", str(tmp_path / "d.json")])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output[res.output.index("{"):])
    assert {"layers", "first_below"} <= set(d)
    assert {"module", "cosine", "sqnr_db", "max_abs"} <= set(d["layers"][0])
    res = runner.invoke(cli, ["report", str(tmp_path / "p.json"), str(tmp_path / "d.json"),
                              "--html", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "r.html").read_text()
    assert "Per-block latency" in page and "Cosine by depth" in page
    assert page.count("data:image/png;base64,") == 2
    assert_renders_in_chromium(tmp_path / "r.html", tmp_path)


def test_python_api(layer_artifacts):
    import edgekit

    a = edgekit.load(layer_artifacts["fp32/tflite"])
    assert a.profile(runs=2, warmup=1)["module_coverage"] >= 0.9
    d = a.diff(against=edgekit.load(layer_artifacts["fp32/onnx"]))
    assert d["first_below"] is None and d["compared"] >= 50  # TFLite vs ONNX, layer by layer


def _without_layers(src: Path, tmp_path: Path) -> Path:
    copy = tmp_path / src.name
    shutil.copytree(src, copy)
    (copy / LAYERS_NAME).unlink()
    return copy


def test_refusals_name_the_fix(layer_artifacts, tmp_path):
    # an int8 ONNX lost the exporter's node metadata to ORT: without layers.json, no modules
    old_int8 = _without_layers(layer_artifacts["int8/onnx"], tmp_path)
    with pytest.raises(UsageError, match="no layers.json") as info:
        diff_artifact(old_int8)
    assert "re-export" in (info.value.hint or "")
    assert profile_artifact(old_int8, runs=2, warmup=1)["module_coverage"] is None
    # an fp32 ONNX still maps from the file's own metadata, for profile and diff alike
    old_fp32 = _without_layers(layer_artifacts["fp32/onnx"], tmp_path)
    assert profile_artifact(old_fp32, runs=2, warmup=1)["mapped_share"] == pytest.approx(1.0)
    assert diff_artifact(old_fp32)["first_below"] is None
    (old_fp32 / LAYERS_NAME).write_text("[1, 2")
    with pytest.raises(ArtifactError, match="layers.json"):
        profile_artifact(old_fp32, runs=2, warmup=1)
    with pytest.raises(UsageError, match="--against"):
        diff_artifact(layer_artifacts["fp32/onnx"], against=str(tmp_path / "nowhere"))


def test_profile_on_the_emulated_arm_device(layer_artifacts):
    """Smoke test: the aarch64 runtimes' profilers under qemu; emulated time is shares only,
    the instructions are counted per model."""
    p = profile_artifact(layer_artifacts["int8/tflite"], "qemu://cortex-a76", runs=2, warmup=1)
    assert p["emulated"] and p["machine"] == "aarch64"
    assert p["module_coverage"] >= 0.9
    assert p["instructions"]["instructions_per_inference"] > 1e5  # ~0.8 M: a 64×64 LeViT
