"""Full-integer TFLite (`--to tflite --quant int-only`) in three runtimes no one here wrote:
ai-edge-litert, TFLite Micro (the microcontroller runtime) and Arm's Vela for Ethos-U; the
integer-only check; bad input to `compile`; an op with no integer form."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from edgekit.exporters.tflite_integer import integer_violations

from edgekit.artifact import Artifact
from edgekit.cli import cli
from edgekit.errors import ArtifactError, ExportError, UsageError
from edgekit.npu import compile_for_npu
from edgekit.pipeline import ExportRequest, export_model
from edgekit.validate import runtime_extras, validate_artifact
from tests.conftest import exported_once


@pytest.fixture(scope="session")
def integer_tflite(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The trained Fashion-MNIST LeViT as full-integer TFLite (int8 I/O), the tiny conv net with
    uint8 I/O, and the tiny net's fp32 TFLite (float everywhere)."""

    def export(out: Path) -> dict[str, Path]:
        (levit,) = export_model(ExportRequest(model="fmnist_levit", formats=("tflite",),
                                              quant="int-only", out=out))
        (tiny,) = export_model(ExportRequest(model="tests.tiny_models:tiny_convnet",
                                             formats=("tflite",), quant="int-only",
                                             integer_io="uint8", out=out))
        (fp32,) = export_model(ExportRequest(model="tests.tiny_models:tiny_convnet",
                                             formats=("tflite",), out=out))
        return {"levit": levit.artifact.path, "tiny_uint8": tiny.artifact.path,
                "fp32": fp32.artifact.path}

    return exported_once(tmp_path_factory, "integer-tflite", export)


def test_levit_file_is_integer_only_and_validated_in_litert(integer_tflite):
    art = Artifact.open(integer_tflite["levit"])
    m = art.manifest
    assert m.validation is not None and m.validation.validated is True
    assert m.validation.cosine >= 0.98 and m.validation.runtime == "litert"
    assert integer_violations(art.model_path) == []
    q = m.exporter["quantization"]
    assert q["recomposed_softmax"] == 1  # LeViT's last attention: a softmax over one key
    assert q["io"] == "int8" and m.inputs[0].dtype == "int8" and m.outputs[0].dtype == "int8"
    assert {"SOFTMAX", "BATCH_MATMUL", "HARD_SWISH", "FULLY_CONNECTED"} <= set(q["ops"])
    assert "QUANTIZE" not in q["ops"] and "DEQUANTIZE" not in q["ops"]
    assert q["op_versions"]["CONV_2D"] == 3


def test_tflite_micro_runs_it_and_reports_its_arena(integer_tflite):
    art = Artifact.open(integer_tflite["levit"])
    report = validate_artifact(art, runtime="tflm")
    assert report.validated is True and report.cosine >= 0.98, report.reason
    arena = runtime_extras(art, "tflm")["tflm_arena_bytes"]
    assert 16 * 1024 < arena < 2 * 1024 * 1024


def test_uint8_io_runs_in_litert_and_tflite_micro(integer_tflite):
    art = Artifact.open(integer_tflite["tiny_uint8"])
    assert art.manifest.inputs[0].dtype == "uint8" and art.manifest.outputs[0].dtype == "uint8"
    assert art.manifest.validation.validated is True
    assert integer_violations(art.model_path) == []
    assert validate_artifact(art, runtime="tflm").validated is True


def test_inspect_integer_only_passes_and_names_float_tensors(integer_tflite):
    ok = CliRunner().invoke(cli, ["inspect", "--integer-only", "--json",
                                  str(integer_tflite["levit"])])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["integer_only"] is True
    bad = CliRunner().invoke(cli, ["inspect", "--integer-only", str(integer_tflite["fp32"])])
    assert bad.exit_code == 3
    assert "CONV_2D #" in bad.output and "(float32)" in bad.output


def test_vela_puts_every_op_on_the_npu_and_records_it(integer_tflite, tmp_path):
    import shutil

    art_dir = tmp_path / "levit"
    shutil.copytree(integer_tflite["levit"], art_dir)
    summary = compile_for_npu(art_dir, "ethos-u55-128")
    assert summary.cpu_ops == 0 and summary.npu_op_share == 1.0 and summary.npu_ops > 100
    assert summary.sram_bytes > 0 and summary.flash_bytes > 0 and summary.cycles_total > 0
    assert summary.inference_ms > 0 and summary.estimated
    assert (art_dir / summary.optimized_file).stat().st_size > 0
    reopened = Artifact.open(art_dir)  # the model's hash still holds
    assert json.loads((art_dir / "manifest.json").read_text())["npu"]["ethos-u55-128"][
        "npu_ops"] == summary.npu_ops
    assert reopened.manifest.format == "tflite"


def test_vela_leaves_a_float_file_to_the_cpu_by_op(integer_tflite, tmp_path):
    model = tmp_path / "fp32.tflite"
    model.write_bytes(Artifact.open(integer_tflite["fp32"]).model_path.read_bytes())
    summary = compile_for_npu(model, "ethos-u85-256")
    assert summary.npu_ops == 0 and summary.cpu_ops > 0
    assert "CONV_2D" in summary.cpu_op_types


def test_compile_refuses_malformed_files_clearly(integer_tflite, tmp_path):
    good = Artifact.open(integer_tflite["tiny_uint8"]).model_path.read_bytes()
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(good[: len(good) // 3])
    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(good[:8] + np.random.default_rng(0).bytes(4000))
    for path in (truncated, garbage):
        with pytest.raises(ArtifactError):
            compile_for_npu(path, "ethos-u55-128")
    with pytest.raises(UsageError, match="unknown NPU"):
        compile_for_npu(truncated, "ethos-u99")
    with pytest.raises(UsageError, match="TFLite"):
        compile_for_npu(_onnx_file(tmp_path), "ethos-u55-128")


def _written(out: Path) -> list[Path]:
    """What an export left in `out` beyond its lock files."""
    return [p for p in out.iterdir() if not p.name.endswith(".lock")]


def _onnx_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really onnx")
    return path


def test_an_op_without_an_integer_form_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(ExportError, match=r"no integer form for: SIN \("):
        export_model(ExportRequest(model="tests.tiny_models:tiny_sine", formats=("tflite",),
                                   quant="int-only", out=tmp_path))
    assert not _written(tmp_path)


def test_integer_io_and_range_options_are_checked_before_anything_runs(tmp_path):
    with pytest.raises(UsageError, match="--io"):
        export_model(ExportRequest(model="tests.tiny_models:tiny_convnet", formats=("onnx",),
                                   integer_io="uint8", out=tmp_path))
    from edgekit.quant.config import QuantConfig

    with pytest.raises(UsageError, match="calib-method entropy"):
        export_model(ExportRequest(model="tests.tiny_models:tiny_convnet", formats=("tflite",),
                                   quant="int-only", out=tmp_path,
                                   quant_config=QuantConfig(calib_method="entropy")))
    with pytest.raises(UsageError, match="finetune-steps"):
        export_model(ExportRequest(model="fmnist_levit", formats=("tflite",), quant="int-only",
                                   finetune_steps=10, finetune_data="fmnist", out=tmp_path))
    assert not _written(tmp_path)


def test_bench_on_vela_is_a_flagged_estimate_and_compile_has_a_cli(integer_tflite, tmp_path):
    import shutil

    from edgekit.bench.run import run_bench

    (row,) = run_bench([integer_tflite["tiny_uint8"]], device="vela://ethos-u65-256")
    assert row["estimated"] is True and row["runtime"] == "vela" and row["median_ms"] > 0
    assert row["samples_ms"] == [] and row["npu"]["accelerator"] == "ethos-u65-256"
    with pytest.raises(UsageError, match="vela:// estimates TFLite"):
        run_bench([_onnx_artifact(tmp_path / "onnx")], device="vela://ethos-u65-256")
    art = tmp_path / "tiny"
    shutil.copytree(integer_tflite["tiny_uint8"], art)
    res = CliRunner().invoke(cli, ["compile", str(art), "--npu", "ethos-u85-256", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["npu_op_share"] == 1.0 and (art / out["optimized_file"]).exists()


def _onnx_artifact(tmp_path: Path) -> Path:
    from edgekit.pipeline import ExportRequest, export_model

    (o,) = export_model(ExportRequest(model="tests.tiny_models:tiny_convnet", out=tmp_path))
    return o.artifact.path


def test_litert_aarch64_on_the_emulated_arm_device_runs_it(integer_tflite):
    from edgekit.qemu import QemuDevice
    from edgekit.qemu.run import validate_on

    report = validate_on(QemuDevice.from_url("qemu://cortex-a76"),
                         Artifact.open(integer_tflite["levit"]))
    assert report.validated is True and report.cosine >= 0.98, report.reason


def test_gelu_becomes_its_sigmoid_form_within_0_021():
    import torch
    from edgekit.exporters.tflite_integer import sigmoid_gelu

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU(),
                                torch.nn.Sequential(torch.nn.GELU()))
    x = torch.linspace(-8, 8, 4001)
    want = torch.nn.functional.gelu(x)
    assert sigmoid_gelu(model) == 2
    assert not any(isinstance(m, torch.nn.GELU) for m in model.modules())
    assert (model[1](x) - want).abs().max() < 0.021


def test_batched_scalar_multiply_is_reshaped_so_vela_u55_compiles_it(tmp_path):
    (o,) = export_model(ExportRequest(model="tests.tiny_models:tiny_patch_scale",
                                      formats=("tflite",), quant="int-only", out=tmp_path))
    assert o.artifact.manifest.validation.validated is True
    assert o.artifact.manifest.exporter["quantization"]["batch1_elementwise"] >= 1
    summary = compile_for_npu(o.artifact.path, "ethos-u55-128")  # crashed before the rewrite
    assert summary.npu_ops > 0 and "MUL" not in summary.cpu_op_types
    assert set(summary.cpu_op_types) <= {"MEAN"}  # a batched MEAN is Vela's to leave on the CPU
