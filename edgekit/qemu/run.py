"""Running artifacts on the emulated ARM device: outputs (validate, run) and instruction counts.

Every run is the device agent (edgekit/bench/agent.py) under qemu-aarch64 with the device's
Python, so an output or a count comes from the aarch64 build of the artifact's runtime. The
guest is a child process with a timeout; a guest that dies of a signal (SIGSEGV, SIGILL in an
unsupported instruction) or hangs becomes a DeviceError naming the CPU and the runtime.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import Artifact
from edgekit.bench.collectors import AGENT, DeviceError
from edgekit.errors import UsageError
from edgekit.qemu import BUILD_HINT, DeviceNotBuilt, QemuDevice
from edgekit.validate import (
    ValidationReport,
    check_companion_files,
    judge,
    validation_batches,
    with_companions,
)

# format -> the runtime's distribution name on the device (device.json's keys)
DEVICE_DIST = {"onnx": "onnxruntime", "tflite": "ai-edge-litert", "executorch": "executorch"}


@dataclass(frozen=True)
class KnownCrash:
    """A crash of a device runtime build that is understood: `signal` when the CPU model lacks
    the /proc/cpuinfo feature `missing_feature`."""

    runtime: str
    signal: str
    missing_feature: str
    why: str
    hint: str


KNOWN_CRASHES = (
    KnownCrash("executorch", "SIGILL", "atomics",
               "the device's ExecuTorch Python runtime loads torch 2.10's aarch64 wheel, whose "
               "bundled mimalloc executes ARMv8.1 LSE atomics (ldaddal) when libc10 loads "
               "(pytorch/pytorch#174344, fixed in torch 2.11, whose aarch64 PyPI wheels are "
               "CUDA builds); this CPU is ARMv8.0 and has no LSE",
               "validate ExecuTorch artifacts on an ARMv8.1+ model (qemu://cortex-a76); on a "
               "real ARMv8.0 board use an ExecuTorch runtime built without torch"),
)


def cpu_features(dev: QemuDevice) -> set[str]:
    """The Features line of the CPU model's /proc/cpuinfo on the device."""
    text = (dev.root / f"cpu-{dev.cpu}" / "proc" / "cpuinfo").read_text()
    for line in text.splitlines():
        if line.startswith("Features"):
            return set(line.split(":", 1)[1].split())
    return set()


def explain_crash(dev: QemuDevice, runtime: str, sig: str) -> KnownCrash | None:
    features = cpu_features(dev)
    return next((k for k in KNOWN_CRASHES if k.runtime == runtime and k.signal == sig
                 and k.missing_feature not in features), None)


@dataclass(frozen=True)
class GuestRun:
    outputs: list[np.ndarray]
    runtime_version: str
    machine: str


def _guest(dev: QemuDevice, artifact: Artifact, args: list[str], timeout: float,
           count_to: Path | None = None) -> str:
    """Run the agent on the device (for .ekr: the runtime's own runner binary, with `args` in
    its syntax); stdout's last line (its JSON) or a DeviceError."""
    dev.check()
    runtime = DEVICE_DIST.get(artifact.manifest.format, artifact.manifest.format)
    if artifact.manifest.format == "ekr":
        cmd = dev.command(str(artifact.model_path.resolve()), *args, count_to=count_to,
                          binary=dev.runner)
    else:
        if dev.info().get("runtimes", {}).get(runtime) is None:
            why = dev.info().get("errors", {}).get(runtime, "not installed")
            raise DeviceError(f"{runtime} is not available on {dev.url} ({why})",
                              hint="rebuild the device with `make arm-device`; the other "
                                   "runtimes still run")
        cmd = dev.command(str(AGENT), "--artifact", str(artifact.path.resolve()), "--threads",
                          "1", *args, count_to=count_to)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=dev.env(threads=1), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise DeviceError(f"{runtime} on {dev.url} hung: killed after {timeout:.0f} s "
                          f"({artifact.manifest.file})",
                          hint="qemu runs 100-500x slower than the host: raise --timeout "
                               "for large models") from None
    if proc.returncode < 0:
        sig = signal.Signals(-proc.returncode).name
        known = explain_crash(dev, runtime, sig)
        if known is not None:
            raise DeviceError(f"{runtime} cannot run on {dev.url}: {sig}, because {known.why}",
                              hint=known.hint)
        raise DeviceError(f"{runtime} crashed on {dev.url} with {sig} running "
                          f"{artifact.manifest.file} (the aarch64 build of the runtime, "
                          "emulated)", hint="a SIGILL means an instruction this CPU model "
                          "lacks; try another qemu://CPU, and report the runtime bug with "
                          "the artifact")
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else \
            f"exit code {proc.returncode}"
        raise DeviceError(f"{runtime} failed on {dev.url}: {tail[:400]}",
                          hint="the artifact's runtime on the device refused it; "
                               "`edgekit doctor` lists the versions on the device")
    lines = [ln for ln in proc.stdout.strip().splitlines() if ln.startswith("{")]
    if not lines:
        raise DeviceError(f"the agent on {dev.url} printed no result",
                          hint="rerun with --debug")
    return lines[-1]


def _runner_outputs(dev: QemuDevice, artifact: Artifact, inputs: np.ndarray | None,
                    timeout: float) -> GuestRun:
    """.ekr on the device: raw float32 inputs in, raw float32 outputs out, via ekr_runner."""
    x = artifact.load_golden()[0] if inputs is None else None
    batch = np.ascontiguousarray(next(iter(x.values())) if x is not None else inputs,
                                 dtype=np.float32)
    want = tuple(artifact.manifest.inputs[0].shape[1:])
    if tuple(batch.shape[1:]) != want:
        raise UsageError(f"input shape {tuple(batch.shape)} does not fit the artifact's "
                         f"(N, {', '.join(map(str, want))})",
                         hint="resize/crop to the model's input (edgekit run applies the "
                              "manifest's preprocessing to images)")
    out_shape = tuple(artifact.manifest.outputs[0].shape)
    with tempfile.TemporaryDirectory(prefix="edgekit-qemu-") as tmp:
        src, dst = Path(tmp) / "inputs.f32", Path(tmp) / "outputs.f32"
        batch.astype("<f4").tofile(src)
        info = json.loads(_guest(dev, artifact, ["--inputs", str(src), "--outputs", str(dst)],
                                 timeout))
        y = np.fromfile(dst, dtype="<f4")
    per = int(np.prod(out_shape[1:], dtype=np.int64)) * max(1, out_shape[0])
    if y.size != per * len(batch):
        raise DeviceError(f"ekr_runner on {dev.url} wrote {y.size} values, not "
                          f"{per * len(batch)}", hint="rebuild the device (make arm-device)")
    return GuestRun([y.reshape(len(batch), *out_shape[1:]).astype(np.float32)],
                    info["runtime_version"], info["machine"])


def run_outputs(dev: QemuDevice, artifact: Artifact, inputs: np.ndarray | None = None,
                timeout: float = 1800.0, model_file: str | None = None) -> GuestRun:
    """The artifact's outputs on the device, on its golden inputs or on `inputs`; with
    `model_file`, those of a companion file the manifest lists (model.ort)."""
    if artifact.manifest.format == "ekr":
        return _runner_outputs(dev, artifact, inputs, timeout)
    with tempfile.TemporaryDirectory(prefix="edgekit-qemu-") as tmp:
        out = Path(tmp) / "outputs.npz"
        args = ["--outputs", str(out)]
        if model_file is not None:
            args += ["--model-file", model_file]
        if inputs is not None:
            np.save(Path(tmp) / "inputs.npy", np.ascontiguousarray(inputs, dtype=np.float32))
            args += ["--inputs", str(Path(tmp) / "inputs.npy")]
        info = json.loads(_guest(dev, artifact, args, timeout))
        with np.load(out, allow_pickle=False) as data:
            outputs = [data[f"out.{k}"] for k in range(len(data.files))]
    return GuestRun(outputs, info["runtime_version"], info["machine"])


def validate_on(dev: QemuDevice, artifact: Artifact, timeout: float = 1800.0
                ) -> ValidationReport:
    """The golden check, with the outputs of the runtime's aarch64 build on `dev`."""
    _, reference = artifact.load_golden()
    companions = artifact.manifest.exporter.get("companions") or []
    check_companion_files(artifact, companions)
    # the model file, then its companion files (model.ort) through the same aarch64 runtime
    verdicts = []
    for file in [None, *(c["file"] for c in companions)]:
        run = run_outputs(dev, artifact, timeout=timeout, model_file=file)
        verdicts.append([judge(artifact, reference, dict(zip(reference, run.outputs,
                                                            strict=False)),
                               f"{run.runtime_version} on {dev.url} ({run.machine}, emulated)")])
    report = verdicts[0][0]
    return with_companions(report, companions, verdicts[1:],
                           validation_batches(artifact.manifest)[:1])


# The counted inferences are at least this many instructions, so the Python loop around them
# (a few thousand per run) and the plugin's translation-block granularity stay far below 0.1 %.
MIN_COUNTED = 20_000_000


def count_instructions(dev: QemuDevice, artifact: Artifact, runs: int = 3,
                       timeout: float = 3600.0) -> dict[str, Any]:
    """Guest instructions per inference, one runtime thread: the agent loads the artifact, runs
    it once to warm up, then N times between two count markers; the plugin counts only between
    them (insncount.c), so start-up, which varies by a few million instructions from process to
    process, is not in the number. N starts at `runs` and grows, in one more process, when the
    N inferences are under MIN_COUNTED instructions."""
    if runs < 1:
        raise ValueError("runs must be ≥ 1")
    with tempfile.TemporaryDirectory(prefix="edgekit-count-") as tmp:
        def count(n: int) -> tuple[dict[str, int], dict[str, Any]]:
            path = Path(tmp) / f"count-{n}.txt"
            info = json.loads(_guest(dev, artifact, ["--count-runs", str(n)], timeout,
                                     count_to=path))
            fields = {k: int(v) for k, v in
                      (line.split(": ") for line in path.read_text().splitlines())}
            if fields.get("marks") != 1:
                raise DeviceNotBuilt(
                    f"the instruction counter on {dev.url} saw {fields.get('marks', 'no')} "
                    "count-marker pairs, not 1 (a plugin built before markers existed?)",
                    hint=BUILD_HINT)
            return fields, info

        n = runs
        fields, info = count(n)
        if 0 < fields["marked"] < MIN_COUNTED:
            n = min(10_000, int(MIN_COUNTED * n / fields["marked"]) + 1)
            fields, info = count(n)
    return {"instructions_per_inference": fields["marked"] / n,
            "instructions_startup": fields["insns"] - fields["marked"],
            "count_runs": n, "count_method": "markers", "cpu": dev.cpu,
            "runtime": info["runtime"], "runtime_version": info["runtime_version"],
            "threads": 1}


def guest_profile(dev: QemuDevice, artifact: Artifact, runs: int = 5, warmup: int = 1,
                  timeout: float = 3600.0) -> dict[str, Any]:
    """The agent's --profile mode on the emulated CPU (1 thread): the runtime's own profiler,
    aarch64 build. Times are emulated: shares, never speed."""
    from edgekit.bench.collectors import parse_profile

    line = _guest(dev, artifact, ["--profile", str(runs), "--warmup", str(warmup)], timeout)
    return parse_profile(line, "", 0, dev.url)


def count_op_types(dev: QemuDevice, artifact: Artifact, runs: int = 2,
                   timeout: float = 3600.0) -> dict[str, float]:
    """Where an .ekr's instructions go: guest instructions per inference spent in each op type
    (the runner marks only that type's ops inside the counted runs), types present only."""
    from edgekit.intonly.ekr import summarize

    if artifact.manifest.format != "ekr":
        raise UsageError("per-op counts are of .ekr artifacts (the runtime marks its ops)",
                         path=artifact.path, hint="count other formats whole "
                                                  "(edgekit bench --device qemu://CPU)")
    types = summarize(artifact.model_path.read_bytes())["ops"]
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-count-") as tmp:
        for op_type in types:
            path = Path(tmp) / f"{op_type}.txt"
            _guest(dev, artifact, ["--count-runs", str(runs), "--count-op", op_type], timeout,
                   count_to=path)
            fields = {k: int(v) for k, v in
                      (line.split(": ") for line in path.read_text().splitlines())}
            out[op_type] = fields["marked"] / runs
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))
