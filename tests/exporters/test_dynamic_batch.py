"""--dynamic-batch: ONNX and ExecuTorch files with an open batch dimension, validated at batch 1
and at the bound, benchmarked at batch N with throughput; refused with the reason elsewhere."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

import edgekit
from edgekit.cli import cli
from edgekit.errors import InputMismatch, UsageError
from tests.conftest import TINY

HYBRID = "tests.tiny_models:tiny_hybrid"  # chunk + matmul: what ExecuTorch's verifier pinned


@pytest.fixture(scope="module")
def dynamic(tmp_path_factory):
    out = tmp_path_factory.mktemp("dyn")
    arts = edgekit.export(HYBRID, to=("onnx", "executorch"), out=out, dynamic_batch=4)
    return {a.manifest.format: a for a in arts}


@pytest.mark.parametrize("fmt", ["onnx", "executorch"])
def test_dynamic_batch_is_validated_at_1_and_the_bound(dynamic, fmt):
    m = dynamic[fmt].manifest
    assert m.inputs[0].shape[0] == -1 and m.outputs[0].shape[0] == -1
    assert m.exporter["dynamic_batch"]["max"] == 4 and m.exporter["batch"] is None
    v = m.validation
    assert v.validated is True
    assert v.batches["1"]["validated"] is True and v.batches["4"]["validated"] is True
    assert v.batches["max_abs_between_batches"] < 1e-4
    if fmt == "onnx":
        assert v.files["model.ort"]["validated"] is True
        assert v.files["model.ort"]["batches"] == [1, 4]


@pytest.mark.parametrize("fmt", ["onnx", "executorch"])
def test_any_batch_up_to_the_bound_runs(dynamic, fmt):
    a = edgekit.load(dynamic[fmt].path)
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32)).astype(np.float32)
    y3 = a.run(x)  # one batch of 3: a size that was never traced or validated
    assert y3.shape == (3, 10)
    np.testing.assert_allclose(y3[1:2], a.run(x[1:2]), atol=1e-5)


def test_bench_batch_reports_throughput(dynamic):
    a = edgekit.load(dynamic["onnx"].path)
    r = a.bench(runs=5, warmup=1, min_seconds=0.05, rounds=2, batch=4)
    assert r.batch == 4 and r.row["validated"] is True
    assert r.throughput_ips == pytest.approx(4 * 1e3 / r.median_ms)
    with pytest.raises(UsageError, match="exceeds the artifact's dynamic-batch bound 4"):
        a.bench(runs=5, batch=8)


def test_static_artifacts_refuse_another_batch(dynamic, tmp_path):
    (static,) = edgekit.export(TINY, to="executorch", out=tmp_path)
    with pytest.raises(UsageError, match=r"static \(1\), not 2"):
        edgekit.load(static.path).bench(runs=5, batch=2)
    x = np.zeros((2, 3, 32, 32), np.float32)
    assert edgekit.load(static.path).run(x).shape == (2, 10)  # `run` feeds batches of 1
    from edgekit.runtime import RUNTIMES

    session = RUNTIMES.get("executorch")().load(static.model_path, None)
    with pytest.raises(InputMismatch, match="exceeds the program's largest batch 1"):
        session.run({"input": x})


@pytest.mark.parametrize("args, why", [
    (["--to", "tflite"], "litert-torch converts static shapes only"),
    (["--to", "coreml"], "enumerated or ranged shapes"),
    (["--to", "onnx", "--quant", "int-only"], "planned for a static batch"),
    (["--to", "executorch", "--quant", "int8"], "PT2E calibration captures a static batch"),
    (["--to", "onnx", "--batch", "2"], "--batch N fixes the batch"),
])
def test_dynamic_batch_refusals_say_why(tmp_path, args, why):
    res = CliRunner().invoke(cli, ["export", TINY, "--dynamic-batch", *args, "--out",
                                   str(tmp_path), "--json"])
    assert res.exit_code == 2, res.output
    assert why in res.output and not any(tmp_path.iterdir())


def test_max_batch_needs_dynamic_batch(tmp_path):
    res = CliRunner().invoke(cli, ["export", TINY, "--max-batch", "4", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--max-batch applies to --dynamic-batch" in res.output


def test_manifest_records_the_ort_companion(dynamic):
    art = dynamic["onnx"]
    (ort,) = art.manifest.exporter["companions"]
    assert ort["kind"] == "ort-format" and ort["file"] == "model.ort"
    assert (art.path / "model.ort").read_bytes()[4:8] == b"ORTM"
    config = (art.path / ort["operator_config"]).read_text()
    assert "ai.onnx;" in config and "/tmp" not in config
    assert "ai.onnx.MatMul" in ort["operators"] or "com.microsoft.FusedMatMul" in ort["operators"]
    summary = json.loads((art.path / "manifest.json").read_text())["validation"]["files"]
    assert summary["model.ort"]["validated"] is True


def test_a_tampered_ort_file_fails_validation(dynamic, tmp_path):
    import shutil

    from edgekit.errors import ArtifactError

    copy = tmp_path / dynamic["onnx"].path.name
    shutil.copytree(dynamic["onnx"].path, copy)
    data = bytearray((copy / "model.ort").read_bytes())
    data[-100] ^= 0xFF
    (copy / "model.ort").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="model.ort is missing or does not match"):
        edgekit.load(copy).validate()


def test_int8_onnx_keeps_the_dynamic_batch(tmp_path):
    (art,) = edgekit.export(HYBRID, to="onnx", quant="int8", calib_n=16, out=tmp_path,
                            dynamic_batch=4)
    v = art.manifest.validation
    assert art.manifest.inputs[0].shape[0] == -1 and v.validated is True
    assert v.batches["4"]["validated"] is True and v.files["model.ort"]["validated"] is True
