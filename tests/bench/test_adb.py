"""The adb command layer against Debian's real `adb` (no device attached here)."""

import shutil
import subprocess

import pytest

from edgekit.bench.collectors import AdbCollector, BenchConfig, DeviceError, collector_for
from edgekit.errors import UsageError

ADB = shutil.which("adb")


@pytest.fixture(scope="module", autouse=True)
def adb_server():
    assert ADB, "adb missing: scripts/bootstrap.sh installs Debian's adb"
    yield
    subprocess.run([ADB, "kill-server"], capture_output=True, timeout=60)


def test_no_device_is_a_clear_error(tiny_artifact):
    with pytest.raises(DeviceError, match="no adb device attached"):
        AdbCollector(None).measure([tiny_artifact], BenchConfig())


def test_unknown_serial_is_refused(tiny_artifact):
    with pytest.raises(DeviceError, match="'emulator-9999' is not attached"):
        collector_for("adb://emulator-9999").measure([tiny_artifact], BenchConfig())


def test_several_devices_refuse_to_guess(monkeypatch):
    c = AdbCollector(None)
    monkeypatch.setattr(c, "devices", lambda: ["A1", "B2"])
    with pytest.raises(DeviceError, match="refusing to guess"):
        c.resolve()


def test_bad_device_urls():
    with pytest.raises(UsageError):
        collector_for("ssh://hostonly")
    with pytest.raises(UsageError):
        collector_for("ftp://x")


def test_kernel_bench_without_a_device_is_a_clear_error(int_only_artifact):
    from edgekit.bench.kernels import run_kernel_bench

    with pytest.raises(DeviceError, match="'emulator-9999' is not attached"):
        run_kernel_bench([int_only_artifact], "adb://emulator-9999", BenchConfig())


def test_run_without_a_device_is_a_clear_error(tiny_artifact):
    import numpy as np

    from edgekit.artifact import Artifact
    from edgekit.run_one import run_artifact

    art = Artifact.open(tiny_artifact)
    x = np.zeros((1, *art.manifest.inputs[0].shape[1:]), np.float32)
    with pytest.raises(DeviceError, match="no adb device attached"):
        run_artifact(art, x, "adb://")
    with pytest.raises(DeviceError, match="'emulator-9999' is not attached"):
        run_artifact(art, x, "adb://emulator-9999")


def test_ekr_without_a_device_is_a_clear_error(int_only_artifacts):
    import numpy as np

    from edgekit.artifact import Artifact
    from edgekit.bench.run import run_bench
    from edgekit.run_one import run_artifact

    art = Artifact.open(int_only_artifacts["ekr"])
    with pytest.raises(DeviceError, match="'emulator-9999' is not attached"):
        run_bench([art.path], device="adb://emulator-9999", cfg=BenchConfig(retries=0))
    x = np.zeros((1, *art.manifest.inputs[0].shape[1:]), np.float32)
    with pytest.raises(DeviceError, match="no adb device attached"):
        run_artifact(art, x, "adb://")


# A stand-in for adb that is a device on this machine: `shell` runs sh, push/pull copy, and
# /data/local/tmp maps to a temp dir. It drives the adb command layer of the runner path end to
# end (mkdir, push, chmod, run, pull, rm) with the real host runner; a phone is not attached here.
LOOPBACK_ADB = r"""#!/bin/sh
root="$EDGEKIT_FAKE_ADB_ROOT"
map() { printf '%s' "$1" | sed "s#/data/local/tmp#$root#g"; }
echo "$*" >> "$root/../adb.log"
if [ "$1" = devices ]; then printf 'List of devices attached\nloopback\tdevice\n'; exit 0; fi
[ "$1" = -s ] && shift 2
cmd="$1"; shift
case "$cmd" in
  shell) exec sh -c "$(map "$*")" ;;
  push) cp -r "$1" "$(map "$2")" ;;
  pull) cp -r "$(map "$1")" "$2" ;;
  *) echo "unknown adb command $cmd" >&2; exit 1 ;;
esac
"""


def test_ekr_runner_over_the_adb_command_layer(int_only_artifacts, tmp_path, monkeypatch):
    import json

    import numpy as np

    from edgekit.artifact import Artifact
    from edgekit.bench import ekr_device
    from edgekit.kernels.ekr import EkrModel
    from tests.kernels import make_kernels

    assert make_kernels("runner").returncode == 0
    adb = tmp_path / "adb"
    adb.write_text(LOOPBACK_ADB)
    adb.chmod(0o755)
    root = tmp_path / "device"
    root.mkdir()
    monkeypatch.setenv("EDGEKIT_FAKE_ADB_ROOT", str(root))
    c = AdbCollector("loopback", adb=str(adb))
    cfg = BenchConfig(warmup=1, runs=3, threads=2, timeout=120)
    row = ekr_device.measure(int_only_artifacts["ekr"], c, cfg)
    assert row["status"] == "ok" and row["device"] == "adb://loopback"
    assert row["validated"] and row["bit_exact"] is True and len(row["samples_ms"]) == 3
    assert row["threads"] == 2 and row["runtime"] == "ekr"
    art = Artifact.open(int_only_artifacts["ekr"])
    x = next(iter(art.load_golden()[0].values()))[:2]
    res = ekr_device.outputs(art, c, x, cfg)
    np.testing.assert_array_equal(res["outputs"][0], EkrModel.from_file(art.model_path).run(x))
    log = (tmp_path / "adb.log").read_text()
    assert "push" in log and "pull" in log and "chmod 755" in log and "rm -rf" in log
    assert list(root.iterdir()) == []  # every device dir removed
    assert "agent.py" not in log  # the runner alone: no Python on the device
    assert json.dumps(row)  # the row is plain JSON (the bench schema)
