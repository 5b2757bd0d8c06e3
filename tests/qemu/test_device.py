"""The emulated ARM device (edgekit/qemu, `make arm-device`): the counter, real aarch64
validation on ONNX, TFLite and ExecuTorch, `bench --device qemu://`, `run`, and its faults."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.artifact import Artifact
from edgekit.bench.collectors import DeviceError
from edgekit.cli import cli
from edgekit.qemu import DeviceNotBuilt, QemuDevice, device_dir
from edgekit.qemu.run import MIN_COUNTED, count_instructions, run_outputs, validate_on
from tests.conftest import TINY_HYBRID

CPU = "qemu://cortex-a76"


@pytest.fixture(scope="module")
def device() -> QemuDevice:
    dev = QemuDevice.from_url(CPU)
    dev.check()  # make test's setup builds it: a missing device is a failure, not a skip
    return dev


@pytest.fixture(scope="module")
def int8_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The tiny hybrid (conv + attention) exported int8 to the three ARM formats."""
    from edgekit.pipeline import ExportRequest, export_model
    from edgekit.quant.config import QuantConfig

    out = tmp_path_factory.mktemp("arm-int8")
    outcomes = export_model(ExportRequest(model=TINY_HYBRID, quant="int8", out=out,
                                          formats=("onnx", "tflite", "executorch"),
                                          quant_config=QuantConfig(calib_n=16)))
    return {o.artifact.manifest.format: o.artifact.path for o in outcomes}


def _static_aarch64(tmp_path: Path, name: str, asm: str) -> Path:
    src = tmp_path / f"{name}.S"
    src.write_text(asm)
    exe = tmp_path / name
    subprocess.run(["aarch64-linux-gnu-gcc", "-static", "-nostdlib", "-o", str(exe), str(src)],
                   check=True)
    return exe


LOOP = """
.global _start
_start:
    ldr x0, ={n}
1:  subs x0, x0, #1
    b.ne 1b
    mov x0, #0
    mov x8, #93
    svc #0
"""


# The agent's count markers (edgekit/bench/agent.py count_mark) around a known loop.
MARKED_LOOP = """
.global _start
_start:
    mov x0, #-1
    ldr x1, ={start:#x}
    mov x2, #0
    mov x8, #62
    svc #0
    ldr x0, ={n}
1:  subs x0, x0, #1
    b.ne 1b
    mov x0, #-1
    ldr x1, ={stop:#x}
    mov x2, #0
    mov x8, #62
    svc #0
    mov x0, #0
    mov x8, #93
    svc #0
"""


def test_executorch_on_an_armv8_0_core_is_explained_not_a_bare_sigill(int8_artifacts):
    # The real device build on the real in-order core: torch 2.10's mimalloc needs LSE atomics.
    a53 = QemuDevice.from_url("qemu://cortex-a53")
    with pytest.raises(DeviceError) as info:
        validate_on(a53, Artifact.open(int8_artifacts["executorch"]), timeout=600)
    msg = str(info.value)
    assert "SIGILL" in msg and "pytorch/pytorch#174344" in msg and "LSE" in msg, msg
    assert "cortex-a76" in info.value.hint


@pytest.mark.parametrize("n", [1000, 123457])
def test_the_counter_counts_a_known_loop_exactly(device, tmp_path, n):
    exe = _static_aarch64(tmp_path, "loop", LOOP.format(n=n))
    out = tmp_path / "count.txt"
    subprocess.run(["qemu-aarch64", "-cpu", "cortex-a76", "-plugin",
                    f"{device.plugin},out={out}", str(exe)], check=True)
    insns = int(dict(ln.split(": ") for ln in out.read_text().splitlines())["insns"])
    assert insns == 2 * n + 4  # ldr, n × (subs, b.ne), mov, mov, svc


@pytest.mark.parametrize("n", [1000, 123457])
def test_the_counter_counts_exactly_between_the_agents_markers(device, tmp_path, n):
    from edgekit.bench.agent import COUNT_MARK_START, COUNT_MARK_STOP

    exe = _static_aarch64(tmp_path, "marked", MARKED_LOOP.format(
        n=n, start=COUNT_MARK_START, stop=COUNT_MARK_STOP))
    out = tmp_path / "count.txt"
    subprocess.run(["qemu-aarch64", "-cpu", "cortex-a76", "-plugin",
                    f"{device.plugin},out={out}", str(exe)], check=True)
    fields = {k: int(v) for k, v in (ln.split(": ") for ln in out.read_text().splitlines())}
    assert fields["insns"] == 2 * n + 14 and fields["marks"] == 1
    # after the start marker's svc: ldr, n × (subs, b.ne), then the stop marker's 5
    assert fields["marked"] == 2 * n + 6


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "executorch"])
def test_int8_validates_on_the_aarch64_runtime(device, int8_artifacts, fmt):
    art = Artifact.open(int8_artifacts[fmt])
    report = validate_on(device, art)
    host = art.manifest.validation
    assert report.validated is True, report
    assert "aarch64, emulated" in report.runtime and CPU in report.runtime
    # the same artifact on x86 and on ARM: different kernels, the same int8 model
    assert abs(report.cosine - host.cosine) < 0.01, (report.cosine, host.cosine)
    if fmt == "onnx":  # the ORT format (fused QLinear ops) runs in the aarch64 onnxruntime too
        ort = report.files["model.ort"]
        assert ort["validated"] is True and "aarch64, emulated" in ort["runtime"], ort
        assert abs(ort["cosine"] - host.cosine) < 0.01


def test_bench_on_qemu_reports_instructions_never_a_speed(device, int8_artifacts):
    result = CliRunner().invoke(cli, ["bench", str(int8_artifacts["onnx"]), "--device", CPU,
                                      "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["emulated"] is True and row["cpu"] == "cortex-a76"
    assert row["median_ms"] is None and row["samples_ms"] == []
    assert row["instructions_per_inference"] > 1e5 and row["validated"] is True
    # only the inferences are counted (between the agent's markers), never start-up
    assert row["count_method"] == "markers" and row["instructions_startup"] > 1e8
    assert row["count_runs"] * row["instructions_per_inference"] >= MIN_COUNTED
    # determinism: the same artifact counted again, in another process, on the same CPU model
    # (measured: 9.964-9.976 M over four processes, 0.11 %; start-up alone varies by 3 M)
    again = count_instructions(device, Artifact.open(int8_artifacts["onnx"]))
    a, b = row["instructions_per_inference"], again["instructions_per_inference"]
    assert abs(a - b) <= 0.01 * a, (a, b)


def test_run_writes_the_aarch64_output(device, int8_artifacts, tmp_path):
    art = Artifact.open(int8_artifacts["tflite"])
    x = art.load_golden()[0]
    x = next(iter(x.values()))[:1]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    result = CliRunner().invoke(cli, ["run", str(art.path), "--input", str(tmp_path / "x.npy"),
                                      "--device", CPU, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["machine"] == "aarch64" and meta["emulated"] is True
    y = np.load(out)
    host = run_outputs(device, art, x).outputs[0]
    assert np.array_equal(y, host)  # the same device twice: the same bits
    golden = next(iter(art.load_golden()[1].values()))[:1]
    cos = float((y * golden).sum() / np.linalg.norm(y) / np.linalg.norm(golden))
    assert cos > 0.98


# ---- faults ----------------------------------------------------------------------------------

def test_a_device_that_is_not_built_names_the_make_target(monkeypatch, tmp_path, tiny_artifact):
    monkeypatch.setenv("EDGEKIT_ARM_DEVICE", str(tmp_path / "nothing"))
    result = CliRunner().invoke(cli, ["validate", str(tiny_artifact), "--device", CPU])
    assert result.exit_code != 0
    assert "make arm-device" in result.output, result.output
    with pytest.raises(DeviceNotBuilt):
        QemuDevice.from_url(CPU).check()


def test_an_unknown_cpu_is_a_usage_error():
    result = CliRunner().invoke(cli, ["validate", "x", "--device", "qemu://cortex-x9"])
    assert result.exit_code != 0


def _fake_device(tmp_path: Path, python: Path, runtimes: dict[str, str | None]) -> Path:
    """A device tree whose 'python' is `python` (a static aarch64 program)."""
    root = tmp_path / "dev"
    (root / "sysroot" / "usr" / "bin").mkdir(parents=True)
    shutil.copy(python, root / "sysroot" / "usr" / "bin" / "python3.11")
    (root / "cpu-cortex-a76" / "proc").mkdir(parents=True)
    shutil.copy(device_dir() / "cpu-cortex-a76" / "proc" / "cpuinfo",
                root / "cpu-cortex-a76" / "proc" / "cpuinfo")
    (root / "device.json").write_text(json.dumps({"machine": "aarch64", "runtimes": runtimes}))
    return root


ILLEGAL = """
.global _start
_start:
    udf #0
"""
FOREVER = """
.global _start
_start:
1:  b 1b
"""


def test_a_guest_crash_names_the_signal_cpu_and_runtime(monkeypatch, tmp_path, tiny_artifact):
    exe = _static_aarch64(tmp_path, "illegal", ILLEGAL)
    monkeypatch.setenv("EDGEKIT_ARM_DEVICE", str(_fake_device(
        tmp_path, exe, {"onnxruntime": "1.31.1"})))
    with pytest.raises(DeviceError) as info:
        validate_on(QemuDevice.from_url(CPU), Artifact.open(tiny_artifact))
    msg = str(info.value)
    assert "SIGILL" in msg and CPU in msg and "onnxruntime" in msg, msg


def test_a_hung_guest_is_killed_at_the_timeout(monkeypatch, tmp_path, tiny_artifact):
    exe = _static_aarch64(tmp_path, "forever", FOREVER)
    monkeypatch.setenv("EDGEKIT_ARM_DEVICE", str(_fake_device(
        tmp_path, exe, {"onnxruntime": "1.31.1"})))
    with pytest.raises(DeviceError, match="hung: killed after 3 s"):
        validate_on(QemuDevice.from_url(CPU), Artifact.open(tiny_artifact), timeout=3)


def test_a_runtime_missing_on_the_device_is_a_clear_error(monkeypatch, tmp_path, tiny_artifact):
    exe = _static_aarch64(tmp_path, "forever", FOREVER)
    monkeypatch.setenv("EDGEKIT_ARM_DEVICE", str(_fake_device(
        tmp_path, exe, {"onnxruntime": None, "ai-edge-litert": "2.3.0"})))
    with pytest.raises(DeviceError, match="onnxruntime is not available on qemu://cortex-a76"):
        validate_on(QemuDevice.from_url(CPU), Artifact.open(tiny_artifact))


def test_run_refuses_an_input_of_the_wrong_shape(tiny_artifact, tmp_path):
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 7, 7), np.float32))
    result = CliRunner().invoke(cli, ["run", str(tiny_artifact), "--input",
                                      str(tmp_path / "bad.npy")])
    assert result.exit_code != 0 and "does not fit the artifact's input" in result.output


def test_export_validates_on_the_host_and_on_arm(device, tmp_path):
    from tests.conftest import TINY

    result = CliRunner().invoke(cli, ["export", TINY, "--to", "onnx", "--out", str(tmp_path),
                                      "--validate-on", "host,qemu://cortex-a53", "--json"])
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout)
    arm = row["device_validation"]["qemu://cortex-a53"]
    assert row["validated"] is True and arm["validated"] is True, row
    assert "aarch64" in arm["runtime"] and arm["cosine"] > 0.99999
    manifest = json.loads((Path(row["artifact"]) / "manifest.json").read_text())
    assert manifest["exporter"]["device_validation"]["qemu://cortex-a53"]["n_inputs"] == 8
