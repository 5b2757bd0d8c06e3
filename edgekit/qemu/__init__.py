"""The emulated ARM device: aarch64 CPython and the real aarch64 builds of onnxruntime,
ai-edge-litert and the ExecuTorch runtime, run by qemu-aarch64 user-mode as one CPU model.

Built by `make arm-device` (scripts/arm_device.sh) into `.arm-device/` of the checkout (or
$EDGEKIT_ARM_DEVICE). A device URL is `qemu://CPU`; CPU is one of CPUS. Under qemu, wall time
is not speed: what qemu measures exactly is the number of guest instructions, counted by the
TCG plugin built from insncount.c (one runtime thread, between the agent's count markers).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, UsageError

# CPU models the device has a /proc/cpuinfo for (scripts/arm_device.sh CPUS): an in-order
# little core (armv8.0), a big phone core (armv8.2 + dotprod), a server core, and `max` with
# SVE/SME off (qemu 7.2's max advertises SVE2/SME, which no phone has).
CPUS = ("cortex-a53", "cortex-a76", "neoverse-n1", "max")
QEMU_CPU_ARG = {"max": "max,sve=off,sme=off"}
BUILD_HINT = "run `make arm-device` (builds the emulated ARM device, about 2 minutes)"


class DeviceNotBuilt(EdgekitError):
    code, stage, exit_code = "EK602", "device", 5


def device_dir() -> Path:
    env = os.environ.get("EDGEKIT_ARM_DEVICE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".arm-device"


@dataclass(frozen=True)
class QemuDevice:
    cpu: str
    root: Path

    @classmethod
    def from_url(cls, url: str) -> QemuDevice:
        cpu = url.removeprefix("qemu://").strip("/")
        if cpu not in CPUS:
            raise UsageError(f"unknown emulated CPU '{cpu}'",
                             hint=f"use qemu://CPU with CPU one of {', '.join(CPUS)}")
        return cls(cpu, device_dir())

    @property
    def url(self) -> str:
        return f"qemu://{self.cpu}"

    @property
    def python(self) -> Path:
        return self.root / "sysroot" / "usr" / "bin" / "python3.11"

    @property
    def plugin(self) -> Path:
        return self.root / "insncount.so"

    def check(self) -> None:
        missing = [p for p in (self.python, self.root / f"cpu-{self.cpu}" / "proc" / "cpuinfo",
                               self.root / "device.json") if not p.exists()]
        if missing:
            raise DeviceNotBuilt(f"the emulated ARM device is not built ({missing[0]} is "
                                 "missing)", hint=BUILD_HINT)
        if shutil.which("qemu-aarch64") is None:
            raise DeviceNotBuilt("qemu-aarch64 is not installed", hint="apt-get install "
                                 "qemu-user, then " + BUILD_HINT)

    def info(self) -> dict[str, Any]:
        """What the build found on the device: {machine, python, runtimes: {dist: version}}."""
        data: dict[str, Any] = json.loads((self.root / "device.json").read_text())
        return data

    @property
    def runner(self) -> Path:
        """The edgekit runtime's on-device app (static aarch64, kernels_arm/tools/ekr_runner.c)."""
        return self.root / "ekr_runner"

    def command(self, *args: str, count_to: Path | None = None,
                binary: Path | None = None) -> list[str]:
        """argv running the device's Python (or a static aarch64 `binary`) with `args` on this
        CPU model (plus the instruction counter writing to `count_to`)."""
        cmd = ["qemu-aarch64", "-cpu", QEMU_CPU_ARG.get(self.cpu, self.cpu)]
        if count_to is not None:
            if not self.plugin.exists():
                raise DeviceNotBuilt("the instruction-count plugin is not built",
                                     hint=BUILD_HINT)
            cmd += ["-plugin", f"{self.plugin},out={count_to}"]
        if binary is not None:
            if not binary.exists():
                raise DeviceNotBuilt(f"{binary.name} is not built on the emulated device",
                                     hint=BUILD_HINT)
            return cmd + ["-L", str(self.root / f"cpu-{self.cpu}"), str(binary), *args]
        return cmd + ["-L", str(self.root / f"cpu-{self.cpu}"), str(self.python), *args]

    def env(self, threads: int | None = 1) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "QEMU_"))}
        env["PYTHONPATH"] = f"{self.root / 'site'}:{self.root / 'site-et'}"
        env["PYTHONHASHSEED"] = "0"  # the counts of start-up depend on hash seeds
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        return env
