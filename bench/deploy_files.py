"""The deploy files users ship, for the smallest member of every family: the ORT format
(model.ort + reduced-build operator config) beside the .onnx, and dynamic-batch ONNX and
ExecuTorch programs validated at batch 1 and 4 in their runtimes; then ONNX Runtime host
throughput at batch 1 vs 4 (same process, sequential; the host is shared, ratios only).

    python bench/deploy_files.py [--families levit,...] [--update-readme]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from edgekit.models.families import FAMILIES
from readme_section import replace_section

import edgekit

RESULTS = Path(__file__).with_name("results") / "deploy_files.json"
MAX_BATCH = 4


def one(model: str, out: Path, runs: int) -> dict:
    row: dict = {"model": model}
    t = time.perf_counter()
    arts = []
    for fmt in ("onnx", "executorch"):  # one at a time: a refusal of one keeps the other
        try:
            arts += edgekit.export(model, to=fmt, out=out, n_golden=4, dynamic_batch=MAX_BATCH)
        except edgekit.EdgekitError as exc:
            row[fmt] = {"error": exc.message[:300]}
    row["export_s"] = round(time.perf_counter() - t, 1)
    for a in arts:
        m, v = a.manifest, a.manifest.validation
        cell = {"validated": v.validated, "cosine_b1": v.batches["1"]["cosine"],
                f"cosine_b{MAX_BATCH}": v.batches[str(MAX_BATCH)]["cosine"],
                "max_abs_between_batches": v.batches["max_abs_between_batches"],
                "size_bytes": m.size_bytes}
        if m.format == "onnx":
            (ort,) = m.exporter["companions"]
            cell["ort"] = {**v.files["model.ort"], "size_bytes": ort["size_bytes"],
                           "operators": len(ort["operators"])}
            loaded = edgekit.load(a.path)
            b1 = loaded.bench(runs=runs, warmup=5, min_seconds=1.0, batch=1)
            bn = loaded.bench(runs=runs, warmup=5, min_seconds=1.0, batch=MAX_BATCH)
            cell["throughput"] = {"b1_ips": b1.throughput_ips, f"b{MAX_BATCH}_ips":
                                  bn.throughput_ips, "ratio": bn.throughput_ips / b1.throughput_ips
                                  if b1.throughput_ips and bn.throughput_ips else None,
                                  "stable": bool(b1.row.get("stable") and bn.row.get("stable"))}
        else:
            cell["ir_verifier"] = m.exporter["dynamic_batch"].get("ir_verifier")
        row[m.format] = cell
    return row


def table(rows: list[dict], host: str) -> str:
    lines = [f"Smallest member of every family, live weights; `--to onnx,executorch "
             f"--dynamic-batch --max-batch {MAX_BATCH}`. Cosine vs timm fp32 at batch 1 / "
             f"{MAX_BATCH}; model.ort validated in onnxruntime at both batches; throughput: "
             f"onnxruntime on this host ({host}), images/s at batch {MAX_BATCH} ÷ batch 1.",
             "", f"| model | ONNX cos b1 / b{MAX_BATCH} | .ort (size vs .onnx, ops in the "
             f"reduced config) | ExecuTorch cos b1 / b{MAX_BATCH} | throughput b{MAX_BATCH} "
             "÷ b1 |", "|---|---|---|---|---|"]
    for r in rows:
        o, e = r.get("onnx", {}), r.get("executorch", {})

        def cos(c: dict) -> str:
            if not c or "error" in c:
                return f"✗ {c.get('error', '')[:150]}"
            mark = "✓" if c["validated"] is True else "✗"
            return f"{mark} {c['cosine_b1']:.6f} / {c[f'cosine_b{MAX_BATCH}']:.6f}"

        ort = o.get("ort", {})
        ort_cell = (f"{'✓' if ort.get('validated') is True else '✗'} cos {ort['cosine']:.6f}, "
                    f"{ort['size_bytes'] / max(o['size_bytes'], 1):.2f}×, {ort['operators']} ops"
                    if ort else "✗")
        tp = o.get("throughput") or {}
        ratio = (f"{tp['ratio']:.2f}×" + ("" if tp.get("stable") else " (unstable)")
                 if tp.get("ratio") else "-")
        lines.append(f"| {r['model']} | {cos(o)} | {ort_cell} | {cos(e)} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--families", default=",".join(FAMILIES.list()))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--merge", action="store_true",
                    help="replace only these families' rows in the recorded results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fam in args.families.split(","):
            model = FAMILIES.get(fam).smallest
            print(f"{model} …", flush=True)
            rows.append(one(model, Path(tmp) / model, args.runs))
            print(json.dumps(rows[-1])[:400], flush=True)
    host = f"{platform.machine()}, {_isa()}"
    if args.merge and RESULTS.exists():
        fresh = {r["model"]: r for r in rows}
        old = json.loads(RESULTS.read_text())["rows"]
        rows = [fresh.pop(r["model"], r) for r in old] + list(fresh.values())
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"host": host, "rows": rows}, indent=1))
    text = table(rows, host)
    print(text)
    if args.update_readme:
        replace_section("deploy-files", text)


def _isa() -> str:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX2" if "avx2" in flags else "?"


if __name__ == "__main__":
    main()
