"""`edgekit doctor`: what is installed, which versions, and how to get what is missing."""

from __future__ import annotations

import importlib.metadata as md
import platform
import shutil
from typing import Any

from edgekit.exporter import EXPORTERS
from edgekit.runtime import RUNTIMES

_PACKAGES = (("torch", "torch"), ("torchvision", "torch"), ("timm", "torch"),
             ("onnx", "onnx"), ("onnxscript", "onnx"), ("onnxruntime", "onnx"),
             ("safetensors", "torch"), ("scikit-learn", "torch"), ("scikit-image", "torch"),
             ("litert-torch", "tflite"), ("ai-edge-litert", "tflite"),
             ("executorch", "executorch"), ("coremltools", "coreml"),
             ("ai-edge-quantizer", "npu"), ("ethos-u-vela", "npu"), ("tflite-micro", "npu"))
# Debian tools later stages use (ARM kernels, device tests, report rendering).
_TOOLS = (("aarch64-linux-gnu-gcc", "apt-get install gcc-aarch64-linux-gnu"),
          ("qemu-aarch64", "apt-get install qemu-user"),
          ("llvm-mca-14", "apt-get install llvm-14"),
          ("sshd", "apt-get install openssh-server"),
          ("adb", "apt-get install adb"),
          ("chromium", "apt-get install chromium"))


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def diagnose() -> dict[str, list[dict[str, Any]]]:
    exporters = []
    for name in EXPORTERS.list():
        extra = EXPORTERS.extra(name)
        try:
            EXPORTERS.get(name)
            ok, err = True, ""
        except Exception as exc:  # noqa: BLE001 - report, don't fail
            ok, err = False, str(exc)
        exporters.append({"name": name, "ok": ok, "version": None, "error": err,
                          "fix": f"pip install 'edgekit[{extra}]'" if extra else None})
    runtimes = []
    for name in RUNTIMES.list():
        extra = RUNTIMES.extra(name)
        try:
            cls = RUNTIMES.get(name)
            ok = cls.available()
            version = cls.version() if ok else None
        except Exception:  # noqa: BLE001
            ok, version = False, None
        fix = f"pip install 'edgekit[{extra}]'" if extra else None
        if name == "coreml" and platform.system() != "Darwin":
            fix = "Core ML prediction needs macOS; on Linux exports are checked structurally"
        runtimes.append({"name": name, "ok": ok, "version": version, "fix": fix})
    packages = [{"name": dist, "ok": _version(dist) is not None, "version": _version(dist),
                 "fix": f"pip install 'edgekit[{extra}]'"} for dist, extra in _PACKAGES]
    tools = [{"name": tool, "ok": shutil.which(tool) is not None, "version": None, "fix": fix}
             for tool, fix in _TOOLS]
    return {"exporters": exporters, "runtimes": runtimes, "packages": packages, "tools": tools,
            "kernels": [_kernel_library()], "arm-device": _arm_device()}


def _arm_device() -> list[dict[str, Any]]:
    """The emulated ARM device (edgekit/qemu): its CPU models and the runtimes on it."""
    from edgekit.qemu import BUILD_HINT, CPUS, DeviceNotBuilt, QemuDevice

    dev = QemuDevice.from_url(f"qemu://{CPUS[1]}")
    try:
        dev.check()
    except DeviceNotBuilt as exc:
        return [{"name": "qemu://CPU", "ok": False, "version": None,
                 "fix": exc.hint or BUILD_HINT, "error": exc.message}]
    info = dev.info()
    rows = [{"name": f"qemu://{cpu}", "ok": (dev.root / f"cpu-{cpu}" / "proc" / "cpuinfo"
                                              ).exists(), "version": "aarch64 (emulated)",
             "fix": BUILD_HINT} for cpu in CPUS]
    rows.append({"name": "python", "ok": True, "version": info.get("python"), "fix": None})
    for dist, version in info.get("runtimes", {}).items():
        rows.append({"name": dist, "ok": version is not None, "version": version,
                     "fix": info.get("errors", {}).get(dist, BUILD_HINT)})
    rows.append({"name": "insncount.so", "ok": dev.plugin.exists(), "version": None,
                 "fix": BUILD_HINT})
    return rows


def _kernel_library() -> dict[str, Any]:
    """The host build of kernels_arm/ (edgekit.kernels): built at install, never on first use."""
    from edgekit import kernels
    from edgekit.errors import EdgekitError

    try:
        info = kernels.build_info()
        paths = sorted({k.path for k in kernels.kernels() if k.runs_here})
        return {"name": "edgekit.kernels", "ok": True, "version": f"{info}; {', '.join(paths)}",
                "fix": None}
    except (EdgekitError, OSError) as exc:
        return {"name": "edgekit.kernels", "ok": False, "version": None,
                "fix": getattr(exc, "hint", None) or str(exc)}
