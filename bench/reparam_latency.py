"""ONNX Runtime latency with vs without the deploy passes (reparameterization + folds).

Both artifacts of a model are timed in the same process, interleaved (A B A B …), so machine
noise hits both alike; we report the ratio of medians. Each artifact is validated against timm
fp32 before it is timed.

    python bench/reparam_latency.py [--models fastvit_t8,...] [--rounds 20] [--update-readme]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from readme_section import replace_section

from edgekit.pipeline import ExportRequest, export_model

MODELS = ("fastvit_t8", "mobileone_s0", "repvit_m0_9", "levit_128s")
RESULTS = Path(__file__).with_name("results") / "reparam_latency.json"


def _session(path: Path, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _timed(sess: ort.InferenceSession, feed: dict, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        sess.run(None, feed)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def bench_model(name: str, out: Path, rounds: int, per_round: int, threads: int) -> dict:
    variants = {}
    for label, reparam in (("reparam", True), ("no-reparam", False)):
        (o,) = export_model(ExportRequest(model=name, out=out / label, reparam=reparam,
                                          n_golden=4))
        assert o.validation is not None and o.validation.validated, o.validation
        proto = onnx.load(str(o.artifact.model_path), load_external_data=False)
        variants[label] = {"artifact": o.artifact, "ops": Counter(n.op_type for n in
                                                                  proto.graph.node)}
    feed = {"input": variants["reparam"]["artifact"].load_golden()[0]["input"][:1]}
    sessions = {k: _session(v["artifact"].model_path, threads) for k, v in variants.items()}
    outs = {k: s.run(None, feed)[0] for k, s in sessions.items()}
    assert np.allclose(outs["reparam"], outs["no-reparam"], rtol=1e-3, atol=1e-3)
    for s in sessions.values():  # warm-up
        _timed(s, feed, 10)
    samples: dict[str, list[float]] = {k: [] for k in sessions}
    for r in range(rounds):
        order = list(sessions) if r % 2 == 0 else list(sessions)[::-1]
        for k in order:
            samples[k].extend(_timed(sessions[k], feed, per_round))
    med = {k: statistics.median(v) for k, v in samples.items()}
    return {
        "model": name,
        "median_ms": med,
        "p90_ms": {k: float(np.percentile(v, 90)) for k, v in samples.items()},
        "samples": {k: len(v) for k, v in samples.items()},
        "speedup": med["no-reparam"] / med["reparam"],
        "nodes": {k: sum(v["ops"].values()) for k, v in variants.items()},
        "conv": {k: v["ops"]["Conv"] for k, v in variants.items()},
        "cosine": {k: v["artifact"].manifest.validation.cosine for k, v in variants.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            row = bench_model(name, Path(tmp) / name, args.rounds, args.per_round, args.threads)
            rows.append(row)
            print(json.dumps(row), flush=True)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"threads": args.threads, "rounds": args.rounds,
                                   "per_round": args.per_round, "rows": rows}, indent=1) + "\n")
    if args.update_readme:
        lines = [f"ONNX Runtime {ort.__version__}, CPU EP, {args.threads} threads, batch 1, "
                 f"{args.rounds}×{args.per_round} interleaved runs per variant "
                 "(`bench/reparam_latency.py`). Both variants validated against timm fp32.",
                 "",
                 "| model | no-reparam median ms | reparam median ms | speed-up | ONNX nodes "
                 "(no-reparam → reparam) | Conv nodes |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for r in rows:
            lines.append(
                f"| {r['model']} | {r['median_ms']['no-reparam']:.2f} | "
                f"{r['median_ms']['reparam']:.2f} | **{r['speedup']:.2f}×** | "
                f"{r['nodes']['no-reparam']} → {r['nodes']['reparam']} | "
                f"{r['conv']['no-reparam']} → {r['conv']['reparam']} |")
        lines += ["", "Absolute times are from a shared 2-core x86 machine; compare ratios."]
        replace_section("reparam-latency", "\n".join(lines))


if __name__ == "__main__":
    main()
