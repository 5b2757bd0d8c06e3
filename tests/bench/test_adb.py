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
