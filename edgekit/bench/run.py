"""`edgekit bench`: verify artifacts, measure through a collector with bounded retries, and turn
failures into explicit failure records (partial samples kept apart, never a 0 ms result)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import edgekit
from edgekit.artifact import Artifact
from edgekit.bench.collectors import BenchConfig, BenchFailed, collector_for
from edgekit.errors import UsageError

BENCHABLE = {"onnx", "tflite", "executorch", "ekr"}
# Formats that an ssh/adb device runs with a static runner pushed there, not the Python agent
# (edgekit/bench/ekr_device.py); local and qemu:// devices run them through the agent.
RUNNER_FORMATS = {"ekr"}


def _agent_device(device: str) -> bool:
    return device in ("", "local") or device.startswith(("qemu://", "vela://"))


def run_bench(paths: list[Path], *, device: str = "local", cfg: BenchConfig = BenchConfig(),
              compare: bool = False, identity: Path | None = None,
              known_hosts: Path | None = None, remote_tmp: str = "/tmp",
              native: str | None = None) -> list[dict[str, Any]]:
    artifacts = [Artifact.open(p) for p in paths]  # sha256 checked before anything is copied
    if cfg.batch is not None:
        _check_batch(artifacts, cfg.batch, device, native)
    if native:
        return _run_native(artifacts, device, cfg, native, identity, known_hosts, remote_tmp)
    for a in artifacts:
        if device.startswith("vela://") and a.manifest.format != "tflite":
            raise UsageError(f"vela:// estimates TFLite files, not {a.manifest.format}",
                             path=a.path, hint="export --to tflite --quant int-only")
        if a.manifest.format not in BENCHABLE:
            raise UsageError(f"{a.manifest.format} artifacts cannot be benchmarked here",
                             path=a.path, hint="Core ML latency needs a Mac (Xcode's "
                             "performance report); bench onnx/tflite/executorch artifacts")
    collector = collector_for(device, identity=identity, known_hosts=known_hosts,
                              remote_tmp=remote_tmp)
    by_runner = [a.path for a in artifacts
                 if a.manifest.format in RUNNER_FORMATS and not _agent_device(device)]
    agent = [a.path for a in artifacts if a.path not in by_runner]
    groups = ([agent] if agent else []) if compare else [[p] for p in agent]
    rows: list[dict[str, Any]] = []
    for path in by_runner:
        from edgekit.bench import ekr_device

        rows += _with_retries(lambda g: [ekr_device.measure(g[0], collector, cfg)], [path],
                              cfg, device)
    for group in groups:
        rows += _with_retries(lambda g: collector.measure(g, cfg), group, cfg, device)
    order = {str(a.path): i for i, a in enumerate(artifacts)}
    rows.sort(key=lambda r: order.get(str(r.get("artifact")), len(order)))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for r in rows:
        r.setdefault("fingerprint", {})["edgekit_version"] = edgekit.__version__
        r["time"] = stamp
    if compare and rows and rows[0].get("status") == "ok":
        # under emulation the ratio is of instructions, never of qemu's wall time
        key = "instructions_per_inference" if rows[0].get("emulated") else "median_ms"
        first = rows[0][key]
        for r in rows:
            if r.get("status") == "ok" and r.get(key) is not None:
                r["ratio_vs_first"] = r[key] / first
                r["ratio_of"] = key
    return rows


def _with_retries(measure: Any, group: list[Path], cfg: BenchConfig,
                  device: str) -> list[dict[str, Any]]:
    """measure(group) with bounded retries; a group that fails every attempt becomes failure
    records (the attempts' errors and partial samples kept apart, never a 0 ms result)."""
    failures = []
    for attempt in range(cfg.retries + 1):
        try:
            results = measure(group)
        except BenchFailed as exc:
            failures.append({"attempt": attempt, "error": exc.message,
                             "partial_samples_ms": exc.partial})
            continue
        for r, path in zip(results, group, strict=True):
            r["artifact"] = str(path)
            r["failed_attempts"] = failures
        return list(results)
    return [{"artifact": str(path), "device": device, "status": "failed",
             "error": failures[-1]["error"], "attempts": failures} for path in group]


def _check_batch(artifacts: list[Artifact], batch: int, device: str, native: str | None
                 ) -> None:
    """--batch N: the agent runs N images per inference on artifacts whose batch allows it."""
    if not 1 <= batch <= 256:
        raise UsageError(f"--batch {batch} is out of range", hint="use 1..256")
    if native or device.startswith("vela://"):
        raise UsageError("--batch applies to the edgekit agent's runtimes",
                         hint="drop --batch with --native or vela://")
    from edgekit.bench.agent import pick_batch  # the device's rule, applied before any copy

    for a in artifacts:
        static = int(a.manifest.inputs[0].shape[0])
        if a.manifest.format in RUNNER_FORMATS and batch != max(static, 1):
            raise UsageError(f"{a.manifest.format} artifacts run their static batch ({static})",
                             path=a.path, hint="drop --batch")
        try:
            pick_batch(json.loads((a.path / "manifest.json").read_text()), batch)
        except SystemExit as exc:
            reason, _, fix = str(exc).partition(": re-export")
            raise UsageError(reason, path=a.path, hint=f"re-export{fix}") from None


def _run_native(artifacts: list[Artifact], device: str, cfg: BenchConfig, tool: str,
                identity: Path | None, known_hosts: Path | None,
                remote_tmp: str) -> list[dict[str, Any]]:
    from edgekit.bench.collectors import LocalCollector, SshCollector, run_native_local

    for a in artifacts:
        if a.manifest.format in RUNNER_FORMATS:
            raise UsageError(f"{a.manifest.format} artifacts are timed by edgekit's own "
                             "runner, not a native tool", path=a.path,
                             hint="drop --native: `edgekit bench` pushes the runner to "
                                  "ssh/adb devices")
    collector = collector_for(device, identity=identity, known_hosts=known_hosts,
                              remote_tmp=remote_tmp)
    rows = []
    for a in artifacts:
        try:
            if isinstance(collector, LocalCollector):
                row = run_native_local(tool, a.path, cfg)
            elif isinstance(collector, SshCollector):
                row = collector.measure_native(tool, a.path, cfg)
            else:
                raise UsageError("--native runs locally or over ssh in this version",
                                 hint="use the agent (drop --native) for adb devices")
        except BenchFailed as exc:
            row = {"artifact": str(a.path), "device": device, "status": "failed",
                   "error": exc.message, "attempts": []}
        row["artifact"] = str(a.path)
        row.setdefault("fingerprint", {})["artifact_sha256"] = a.manifest.sha256
        rows.append(row)
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for r in rows:
        r["fingerprint"]["edgekit_version"] = edgekit.__version__
        r["time"] = stamp
    return rows


def write_results(rows: list[dict[str, Any]], out: Path) -> None:
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(rows, indent=1) + "\n")
    tmp.replace(out)
