"""`edgekit bench --kernels ARTIFACT`: time the C kernels (kernels_arm/) at the shapes of an
integer-only artifact, on the device, with the static `ek_bench` binary.

The artifact's manifest lists its kernel shapes (exporter.kernel_shapes, written by the int-only
exporter). ek_bench is chosen by the device's `uname -m` (aarch64 → the static cross build,
x86_64 → the host build), copied with the shapes into a private temp dir (ssh: the collector's
own dir handling; adb: /data/local/tmp), run there, and its JSON rows — the `edgekit bench`
schema — come back with the device and artifact added.

`qemu://CPU` runs the aarch64 build locally under qemu-aarch64 -cpu CPU: a correctness smoke
test of the ARM paths (every row's output is compared with the scalar path); its times are
emulation times, flagged `emulated`, never speeds.
"""

from __future__ import annotations

import json
import platform
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edgekit.artifact import Artifact
from edgekit.bench.collectors import (
    AdbCollector,
    BenchConfig,
    BenchFailed,
    DeviceError,
    LocalCollector,
    SshCollector,
    collector_for,
)
from edgekit.errors import UsageError

KERNELS_DIR = Path(__file__).resolve().parents[2] / "kernels_arm"
BINARIES = {"aarch64": "build/a64/ek_bench", "arm64": "build/a64/ek_bench",
            "x86_64": "build/host/ek_bench"}
EMULATED_NOTE = ("qemu emulation: a correctness smoke test of the ARM paths; these times are "
                 "not device speeds")


def ek_bench_for(machine: str, override: Path | None = None) -> Path:
    """The ek_bench binary for a device architecture (`uname -m`)."""
    if override is not None:
        if not override.is_file():
            raise UsageError("no such ek_bench binary", path=override)
        return override
    rel = BINARIES.get(machine.strip())
    if rel is None:
        raise UsageError(f"no ek_bench build for a {machine.strip()} device",
                         hint=f"devices: {', '.join(sorted(BINARIES))}; or pass --ek-bench PATH")
    binary = KERNELS_DIR / rel
    if not binary.is_file():
        raise UsageError(f"ek_bench for {machine.strip()} is not built", path=binary,
                         hint="run `make -C kernels_arm bench` (the aarch64 build needs "
                              "gcc-aarch64-linux-gnu, installed by `make setup`)")
    return binary


def shapes_text(art: Artifact) -> str:
    shapes = (art.manifest.exporter or {}).get("kernel_shapes")
    if not shapes:
        raise UsageError("the artifact lists no kernel shapes", path=art.path,
                         hint="--kernels times the integer-only kernels: export with "
                              "`--quant int-only` (ONNX) to get an artifact that lists them")
    return "".join(f"{s['op']} {s['shape']}\n" for s in shapes)


def _args(cfg: BenchConfig, pin_cpu: int | None, paths: str | None, label: str) -> list[str]:
    args = ["--runs", str(cfg.runs), "--warmup-seconds", str(cfg.warmup_seconds),
            "--min-seconds", str(min(cfg.min_seconds, 1.0)), "--label", label]
    if pin_cpu is not None:
        args += ["--cpu", str(pin_cpu)]
    if paths:
        args += ["--paths", paths]
    return args


def _parse(out: str, err: str, code: int | None, device: str) -> list[dict[str, Any]]:
    if code != 0:
        tail = (err.strip().splitlines() or [f"exit code {code}"])[-1]
        raise BenchFailed(f"ek_bench failed on {device}: {tail[:300]}",
                          hint="check the binary matches the device (uname -m) and runs there")
    try:
        rows = json.loads(out)
    except ValueError:
        raise BenchFailed(f"ek_bench on {device} printed no results JSON",
                          hint="a crash with no results is a failure, never 0 ms") from None
    if not isinstance(rows, list) or not rows:
        raise BenchFailed(f"ek_bench on {device} returned no rows")
    return rows


def _staged(binary: Path, shapes: str) -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="edgekit-kernels.")
    shutil.copy2(binary, Path(tmp.name) / "ek_bench")
    (Path(tmp.name) / "shapes.txt").write_text(shapes)
    return tmp


def _run_local(cmd: list[str], cfg: BenchConfig, device: str) -> list[dict[str, Any]]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=cfg.timeout)
    except subprocess.TimeoutExpired:
        raise BenchFailed(f"ek_bench timed out after {cfg.timeout:.0f} s on {device}") from None
    return _parse(proc.stdout, proc.stderr, proc.returncode, device)


def measure_kernels(art: Artifact, device: str, cfg: BenchConfig, *, pin_cpu: int | None = None,
                    kernel_paths: str | None = None, ek_bench: Path | None = None,
                    identity: Path | None = None, known_hosts: Path | None = None,
                    remote_tmp: str = "/tmp") -> list[dict[str, Any]]:
    shapes = shapes_text(art)
    label = art.path.name
    args = _args(cfg, pin_cpu, kernel_paths, label)
    url = urlparse(device)
    emulated = url.scheme == "qemu"
    if emulated:
        cpu = url.netloc or "max"
        binary = ek_bench_for("aarch64", ek_bench)
        qemu = shutil.which("qemu-aarch64")
        if not qemu:
            raise UsageError("qemu-aarch64 is not installed", hint="`make setup` (qemu-user)")
        with _staged(binary, shapes) as tmp:
            rows = _run_local([qemu, "-cpu", cpu, f"{tmp}/ek_bench", f"{tmp}/shapes.txt", *args],
                              cfg, device)
    else:
        collector = collector_for(device, identity=identity, known_hosts=known_hosts,
                                  remote_tmp=remote_tmp)
        if isinstance(collector, LocalCollector):
            binary = ek_bench_for(platform.machine(), ek_bench)
            with _staged(binary, shapes) as tmp:
                rows = _run_local([f"{tmp}/ek_bench", f"{tmp}/shapes.txt", *args], cfg, device)
        elif isinstance(collector, SshCollector):
            machine = collector.run("uname -m").stdout.decode()
            binary = ek_bench_for(machine, ek_bench)
            with _staged(binary, shapes) as tmp, \
                    collector.remote_dir_with([Path(tmp)], cfg) as (remote_dir, _):
                where = shlex.quote(f"{remote_dir}/a0")
                remote = (f"cd {where} && exec timeout -k 5 {int(cfg.timeout)} ./ek_bench "
                          f"shapes.txt {' '.join(shlex.quote(a) for a in args)}")
                proc = collector.run(remote, timeout=cfg.timeout + 30)
                rows = _parse(proc.stdout.decode(errors="replace"),
                              proc.stderr.decode(errors="replace"), proc.returncode,
                              collector.device)
        elif isinstance(collector, AdbCollector):
            rows = _measure_adb(collector, shapes, args, cfg, ek_bench)
        else:  # pragma: no cover - collector_for covers every scheme
            raise UsageError(f"--kernels cannot run on {device}")
    sha = art.manifest.sha256
    for r in rows:
        r.update({"device": device, "status": "ok", "model": art.manifest.model,
                  "quant": art.manifest.quant, "format": "kernels"})
        r.setdefault("fingerprint", {})["artifact_sha256"] = sha
        if emulated:
            r["emulated"] = True
            r["warning"] = EMULATED_NOTE
    return rows


def _measure_adb(adb: AdbCollector, shapes: str, args: list[str], cfg: BenchConfig,
                 ek_bench: Path | None) -> list[dict[str, Any]]:
    import os
    import time

    serial = adb.resolve()
    code, machine, err = adb.shell("uname -m")
    if code != 0:
        raise DeviceError(f"uname -m failed on adb://{serial}: {err.strip()[-200:]}")
    binary = ek_bench_for(machine, ek_bench)
    base = f"/data/local/tmp/edgekit-kernels.{os.getpid()}.{int(time.time())}"
    code, _, err = adb.shell(f"mkdir -p {base}")
    if code != 0:
        raise DeviceError(f"cannot create {base} on adb://{serial}: {err.strip()}")
    try:
        with _staged(binary, shapes) as tmp:
            adb.push(Path(tmp) / "ek_bench", f"{base}/ek_bench")
            adb.push(Path(tmp) / "shapes.txt", f"{base}/shapes.txt")
        code, out, err = adb.shell(
            f"cd {base} && chmod 755 ek_bench && timeout {int(cfg.timeout)} ./ek_bench "
            f"shapes.txt {' '.join(shlex.quote(a) for a in args)}", timeout=cfg.timeout + 30)
        return _parse(out, err, code, f"adb://{serial}")
    finally:
        adb.shell(f"rm -rf {base}", timeout=60)


def run_kernel_bench(artifacts: list[Path], device: str, cfg: BenchConfig, **kw: Any
                     ) -> list[dict[str, Any]]:
    """Rows for every artifact; a failure becomes a failure record, never a 0 ms result."""
    import datetime as dt

    import edgekit

    rows: list[dict[str, Any]] = []
    for path in artifacts:
        art = Artifact.open(path)
        try:
            rows.extend(measure_kernels(art, device, cfg, **kw))
        except BenchFailed as exc:
            rows.append({"artifact": str(path), "device": device, "status": "failed",
                         "error": exc.message, "attempts": []})
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for r in rows:
        r.setdefault("fingerprint", {})["edgekit_version"] = edgekit.__version__
        r["time"] = stamp
    return rows
