"""Does `edgekit bench` (the device agent, in its own process) agree with an independent timing
loop of the same runtime? Alternates agent / loop runs per artifact and compares medians.

    python bench/agent_agreement.py [--model efficientformer_l1] [--update-readme]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from readme_section import replace_section

from edgekit.artifact import Artifact
from edgekit.bench.collectors import BenchConfig
from edgekit.bench.run import run_bench
from edgekit.pipeline import ExportRequest, export_model
from edgekit.runtime import DEFAULT_RUNTIME, RUNTIMES

RESULTS = Path(__file__).with_name("results") / "agent_agreement.json"


def independent_median(art: Artifact, threads: int, runs: int) -> float:
    session = RUNTIMES.get(DEFAULT_RUNTIME[art.manifest.format])().load(art.model_path, threads)
    inputs, _ = art.load_golden()
    name, x = next(iter(inputs.items()))
    feed = {name: np.ascontiguousarray(x[: art.manifest.inputs[0].shape[0]])}
    for _ in range(10):
        session.run(feed)
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(feed)
        samples.append((time.perf_counter() - t) * 1e3)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="efficientformer_l1")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args()
    cfg = BenchConfig(threads=args.threads, runs=args.runs, min_seconds=1.0, retries=0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = export_model(ExportRequest(model=args.model, out=Path(tmp),
                                              formats=("onnx", "tflite", "executorch")))
        for o in outcomes:
            agent, loop = [], []
            for _ in range(args.reps):
                (r,) = run_bench([o.artifact.path], cfg=cfg)
                agent.append(r["median_ms"])
                loop.append(independent_median(o.artifact, args.threads, args.runs))
            row = {"model": args.model, "format": o.artifact.manifest.format,
                   "runtime": r["runtime"], "agent_median_ms": statistics.median(agent),
                   "loop_median_ms": statistics.median(loop), "agent_runs": agent,
                   "loop_runs": loop, "stable": r["stable"], "plausible": r["plausible"],
                   "validated": r["validated"]}
            row["ratio"] = row["agent_median_ms"] / row["loop_median_ms"]
            row["agrees_within_33pct"] = abs(row["ratio"] - 1) <= 0.33
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1) + "\n")
    if args.update_readme:
        lines = [f"{args.model}, batch 1, {args.threads} threads; medians of {args.reps} "
                 "alternating runs each (`bench/agent_agreement.py`).", "",
                 "| format | runtime | `edgekit bench` median ms | independent loop median ms | "
                 "ratio | within ±33 % | outputs checked |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(f"| {r['format']} | {r['runtime']} | {r['agent_median_ms']:.2f} | "
                         f"{r['loop_median_ms']:.2f} | {r['ratio']:.2f} | "
                         f"{'yes' if r['agrees_within_33pct'] else 'NO'} | "
                         f"{'ok' if r['validated'] else 'WRONG'} |")
        replace_section("bench-agreement", "\n".join(lines))


if __name__ == "__main__":
    main()
