"""Drive a native benchmark tool found on the device instead of the agent (`--native PATH`) and
parse its report into the agent's schema. Fields a tool does not report are None, never guessed
(no per-sample list, no output check: these tools feed random inputs).

Drivers are keyed by the tool's file name:
- benchmark_litert_model (LiteRT's C++ tool) and benchmark_litert_model.py (its Python mirror,
  shipped in ai-edge-litert's tools/): same "BENCHMARK RESULTS" block.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

from edgekit.bench.collectors import BenchConfig
from edgekit.errors import UsageError


@dataclass(frozen=True)
class NativeDriver:
    name: str
    formats: tuple[str, ...]

    def command(self, tool: str, model: str, cfg: BenchConfig, python: str) -> str:
        prefix = f"{shlex.quote(python)} " if tool.endswith(".py") else ""
        return (f"{prefix}{shlex.quote(tool)} --model={shlex.quote(model)} "
                f"--num_runs={cfg.runs} --warmup_runs={cfg.warmup} "
                f"--num_threads={cfg.threads or 1}")

    def parse(self, text: str) -> dict[str, Any]:
        fields = {
            "init_ms": r"Model initialization:\s+([\d.]+) ms",
            "first_ms": r"Warmup \(first\):\s+([\d.]+) ms",
            "warmup_avg_ms": r"Warmup \(avg\):\s+([\d.]+) ms",
            "mean_ms": r"Inference \(avg\):\s+([\d.]+) ms",
            "min_ms": r"Inference \(min\):\s+([\d.]+) ms",
            "max_ms": r"Inference \(max\):\s+([\d.]+) ms",
            "median_ms": r"Inference \(median\):\s+([\d.]+) ms",
            "std_ms": r"Inference \(std\):\s+([\d.]+) ms",
            "p95_ms": r"Inference \(p95\):\s+([\d.]+) ms",
        }
        out: dict[str, Any] = {}
        for key, pattern in fields.items():
            m = re.search(pattern, text)
            out[key] = float(m.group(1)) if m else None
        runs = re.search(r"Inference \(avg\):\s+[\d.]+ ms \((\d+) runs\)", text)
        out["iterations"] = int(runs.group(1)) if runs else None
        if out["median_ms"] is None or out["iterations"] is None:
            raise ValueError("no BENCHMARK RESULTS block in the tool's output")
        return out


NATIVE_DRIVERS = {
    "benchmark_litert_model": NativeDriver("benchmark_litert_model", ("tflite",)),
    "benchmark_litert_model.py": NativeDriver("benchmark_litert_model.py", ("tflite",)),
}


def driver_for(tool: str) -> NativeDriver:
    name = tool.rstrip("/").rsplit("/", 1)[-1]
    if name not in NATIVE_DRIVERS:
        raise UsageError(f"no parser for native tool '{name}'",
                         hint=f"supported: {', '.join(sorted(NATIVE_DRIVERS))}; or drop "
                              "--native to use the edgekit agent")
    return NATIVE_DRIVERS[name]


def to_schema(parsed: dict[str, Any], driver: NativeDriver, manifest: dict[str, Any],
              raw: str) -> dict[str, Any]:
    mean, std = parsed["mean_ms"], parsed["std_ms"]
    cv = std / mean if mean and std is not None else None
    ratio = (parsed["max_ms"] / parsed["min_ms"]) if parsed["min_ms"] else None
    return {
        **{k: parsed[k] for k in ("median_ms", "mean_ms", "std_ms", "min_ms", "max_ms",
                                  "p95_ms", "init_ms", "first_ms", "warmup_avg_ms",
                                  "iterations")},
        "p90_ms": None, "p99_ms": None, "cv": cv, "samples_ms": [], "warmup_ms": [],
        "peak_rss_mb": None, "runtime": "litert", "runtime_version": f"native {driver.name}",
        "format": manifest["format"], "model": manifest.get("model"),
        "quant": manifest.get("quant"), "size_bytes": manifest.get("size_bytes"),
        "validated": None,
        "validation_note": "native tools feed random inputs; outputs not checked",
        "stable": (cv is not None and cv <= 0.10 and ratio is not None and ratio <= 3),
        "plausible": None, "native": {"tool": driver.name, "report": raw[-4000:]},
    }
