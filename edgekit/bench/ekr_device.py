"""The edgekit runtime on ssh and adb devices: one static binary, nothing else on the device.

The runner (kernels_arm/tools/ekr_runner.c, picked by the device's `uname -m`: the static
aarch64 build for phones and boards, the host build for an x86_64 box) is copied with the
`.ekr` file and raw float32 inputs into a private temp dir on the device (ssh: the collector's
own temp-dir handling, stale dirs removed by age; adb: /data/local/tmp), run there, and the
temp dir removed. No Python, numpy or third-party runtime is needed on the device.

- `measure`: the golden inputs run first (their outputs come back and are checked bit for bit
  against the integer reference in golden.npz), then the timed runs; the runner's JSON line
  (first run, warm-up, every sample, peak RSS, arena) becomes an `edgekit bench` row.
- `outputs`: `edgekit run` / `edgekit validate --device`: inputs in, raw float32 outputs back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit.artifact import Artifact
from edgekit.bench.collectors import (
    AdbCollector,
    BenchConfig,
    BenchFailed,
    DeviceError,
    SshCollector,
)
from edgekit.errors import UsageError

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels_arm"
RUNNERS = {"aarch64": "build/a64/ekr_runner", "arm64": "build/a64/ekr_runner",
           "x86_64": "build/host/ekr_runner"}


def runner_for(machine: str) -> Path:
    """The runner build for a device architecture (`uname -m`)."""
    rel = RUNNERS.get(machine.strip())
    if rel is None:
        raise UsageError(f"no edgekit runtime runner for a {machine.strip()} device",
                         hint=f"devices: {', '.join(sorted(RUNNERS))}")
    binary = KERNELS_DIR / rel
    if not binary.is_file():
        raise UsageError(f"the edgekit runtime runner for {machine.strip()} is not built",
                         path=binary, hint="run `make -C kernels_arm runner` (the aarch64 "
                                           "build needs gcc-aarch64-linux-gnu: `make setup`)")
    return binary


class _Remote(Protocol):
    """What the runner needs of a device: its architecture, a private dir holding some files,
    a command run there, a file read back."""

    device: str

    def machine(self) -> str: ...

    def staged(self, files: dict[str, Path],
               cfg: BenchConfig) -> contextlib.AbstractContextManager[str]: ...

    def run(self, command: str, timeout: float) -> tuple[int, str, str]: ...

    def read(self, path: str, timeout: float) -> bytes: ...


class _Ssh:
    def __init__(self, collector: SshCollector) -> None:
        self.c, self.device = collector, collector.device

    def machine(self) -> str:
        return self.c.run("uname -m").stdout.decode().strip()

    @contextlib.contextmanager
    def staged(self, files: dict[str, Path], cfg: BenchConfig) -> Iterator[str]:
        with tempfile.TemporaryDirectory(prefix="edgekit-ekr-") as tmp:
            for name, src in files.items():
                shutil.copyfile(src, Path(tmp) / name)
            (Path(tmp) / "ekr_runner").chmod(0o755)
            with self.c.remote_dir_with([Path(tmp)], cfg) as (remote_dir, _):
                yield f"{remote_dir}/a0"

    def run(self, command: str, timeout: float) -> tuple[int, str, str]:
        proc = self.c.run(command, timeout=timeout)
        return (proc.returncode, proc.stdout.decode(errors="replace"),
                proc.stderr.decode(errors="replace"))

    def read(self, path: str, timeout: float) -> bytes:
        proc = self.c.run(f"cat {shlex.quote(path)}", timeout=timeout)
        if proc.returncode != 0:
            raise DeviceError(f"reading {path} back from {self.device} failed",
                              hint="check the remote temp dir")
        return proc.stdout


class _Adb:
    def __init__(self, collector: AdbCollector) -> None:
        self.c = collector
        self.device = f"adb://{collector.resolve()}"

    def machine(self) -> str:
        code, out, err = self.c.shell("uname -m")
        if code != 0:
            raise DeviceError(f"uname -m failed on {self.device}: {err.strip()[-200:]}")
        return out.strip()

    @contextlib.contextmanager
    def staged(self, files: dict[str, Path], cfg: BenchConfig) -> Iterator[str]:
        base = f"/data/local/tmp/edgekit-ekr.{os.getpid()}.{int(time.time())}"
        code, _, err = self.c.shell(f"mkdir -p {base}")
        if code != 0:
            raise DeviceError(f"cannot create {base} on {self.device}: {err.strip()}")
        try:
            for name, src in files.items():
                self.c.push(src, f"{base}/{name}")
            code, _, err = self.c.shell(f"chmod 755 {base}/ekr_runner")
            if code != 0:
                raise DeviceError(f"cannot make the runner executable on {self.device}: "
                                  f"{err.strip()[-200:]}")
            yield base
        finally:
            self.c.shell(f"rm -rf {base}", timeout=60)

    def run(self, command: str, timeout: float) -> tuple[int, str, str]:
        return self.c.shell(command, timeout=timeout)

    def read(self, path: str, timeout: float) -> bytes:
        with tempfile.TemporaryDirectory(prefix="edgekit-adb-") as tmp:
            pulled = self.c._adb("pull", path, str(Path(tmp) / "out"), timeout=timeout)
            if pulled.returncode != 0:
                raise DeviceError(f"adb pull of {path} failed: {pulled.stderr.strip()[-200:]}")
            return (Path(tmp) / "out").read_bytes()


def remote_for(collector: Any) -> _Remote:
    if isinstance(collector, SshCollector):
        return _Ssh(collector)
    if isinstance(collector, AdbCollector):
        return _Adb(collector)
    raise UsageError("the edgekit runtime's runner is pushed to ssh:// and adb:// devices",
                     hint="use --device local or qemu://CPU for the others")


def _runner_info(code: int, out: str, err: str, device: str, what: str) -> dict[str, Any]:
    if code != 0:
        tail = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        reason = {2: "usage", 3: "the device's runner rejects the model file",
                  4: "a run failed", 124: "timed out"}.get(code, f"exit code {code}")
        raise BenchFailed(f"ekr_runner {what} failed on {device} ({reason}): {tail[:300]}",
                          hint="check the runner matches the device (uname -m) and the "
                               ".ekr file is intact (edgekit inspect)")
    try:
        return dict(json.loads(out.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        raise BenchFailed(f"ekr_runner on {device} printed no JSON line",
                          hint="a crash with no results is a failure, never 0 ms") from None


def _raw_inputs(x: np.ndarray, into: Path) -> Path:
    path = into / "inputs.f32"
    np.ascontiguousarray(x, dtype="<f4").tofile(path)
    return path


def _outputs(data: bytes, art: Artifact, n: int, device: str) -> np.ndarray:
    shape = tuple(art.manifest.outputs[0].shape[1:])
    y = np.frombuffer(data, dtype="<f4")
    if y.size != n * int(np.prod(shape, dtype=np.int64)):
        raise DeviceError(f"ekr_runner on {device} wrote {y.size} values for {n} inputs of "
                          f"output shape {shape}", hint="rebuild the runner "
                          "(make -C kernels_arm runner)")
    return y.reshape(n, *shape).astype(np.float32)


def _run_on_device(remote: _Remote, art: Artifact, x: np.ndarray, cfg: BenchConfig,
                   timed: bool) -> tuple[dict[str, Any], np.ndarray, dict[str, Any] | None]:
    """Stage the runner, the .ekr and x; run x through it (outputs read back), then, if
    `timed`, the warm-up and timed runs. (info of the inputs run, outputs, timing info)."""
    runner = runner_for(remote.machine())
    threads = f" --threads {int(cfg.threads)}" if cfg.threads else ""
    with tempfile.TemporaryDirectory(prefix="edgekit-ekr-in-") as tmp:
        files = {"ekr_runner": runner, "model.ekr": art.model_path,
                 "inputs.f32": _raw_inputs(x, Path(tmp))}
        with remote.staged(files, cfg) as where:
            d = shlex.quote(where)
            code, out, err = remote.run(
                f"cd {d} && timeout {int(cfg.timeout)} ./ekr_runner model.ekr --inputs "
                f"inputs.f32 --outputs outputs.f32{threads}", timeout=cfg.timeout + 30)
            info = _runner_info(code, out, err, remote.device, "run")
            y = _outputs(remote.read(f"{where}/outputs.f32", timeout=600), art, len(x),
                         remote.device)
            if not timed:
                return info, y, None
            code, out, err = remote.run(
                f"cd {d} && timeout {int(cfg.timeout)} ./ekr_runner model.ekr --warmup "
                f"{cfg.warmup} --runs {cfg.runs}{threads}", timeout=cfg.timeout + 30)
            return info, y, _runner_info(code, out, err, remote.device, "timing")


def outputs(art: Artifact, collector: Any, x: np.ndarray, cfg: BenchConfig) -> dict[str, Any]:
    """The .ekr's outputs on `x`, computed on the device by the runner."""
    remote = remote_for(collector)
    info, y, _ = _run_on_device(remote, art, x, cfg, timed=False)
    return {"outputs": [y], "runtime": info["runtime_version"], "device": remote.device,
            "machine": info["machine"], "emulated": False, "kernel_paths": info["kernel_paths"]}


def measure(path: Path, collector: Any, cfg: BenchConfig) -> dict[str, Any]:
    """One `edgekit bench` row for an .ekr on the device: golden inputs checked bit for bit,
    then first run, warm-up and timed runs, every sample kept."""
    from edgekit.bench.agent import stats
    from edgekit.validate import compare, with_exactness

    art = Artifact.open(path)
    remote = remote_for(collector)
    golden_in, reference = art.load_golden()
    _, y, timing = _run_on_device(remote, art, next(iter(golden_in.values())), cfg, timed=True)
    assert timing is not None
    info = timing
    got = dict(zip(reference, [y], strict=False))
    report = with_exactness(compare(reference, got, quant=art.manifest.quant,
                                    runtime=f"{info['runtime_version']} on {remote.device}",
                                    kinds=art.golden_kinds()), art.golden_exact(), got)
    samples = [float(s) for s in info["samples_ms"]]
    if not samples:
        raise BenchFailed(f"ekr_runner on {remote.device} returned no timed samples",
                          hint="pass --runs 1 or more")
    s = stats(samples)
    m = art.manifest
    return {
        "artifact": str(path), "model": m.model, "format": m.format, "quant": m.quant,
        "device": remote.device, "status": "ok", "emulated": False,
        "runtime": "ekr", "runtime_version": info["runtime_version"],
        "threads": info.get("threads"), **s, "samples_ms": samples,
        "warmup_ms": [float(v) for v in info["warmup_ms"]], "init_ms": info["init_ms"],
        "first_ms": info["first_ms"], "peak_rss_mb": info["peak_rss_kb"] / 1024.0,
        "arena_bytes": info["arena_bytes"], "arena_lower_bound": info["arena_lower_bound"],
        "kernel_paths": info["kernel_paths"], "validated": bool(report.validated),
        "validation_cosine": report.cosine, "bit_exact": report.bit_exact,
        "stable": s["cv"] <= 0.10 and s["max_ms"] / max(s["min_ms"], 1e-9) <= 3,
        "plausible": None, "size_bytes": m.size_bytes, "input_shape": list(m.inputs[0].shape),
        "fingerprint": {"artifact_sha256": m.sha256, "machine": info["machine"]},
        "config": {"warmup": cfg.warmup, "runs": cfg.runs, "interleaved": False,
                   "runner": "ekr_runner (static, no Python on the device)"},
    }
