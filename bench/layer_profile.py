"""Where the time goes: `edgekit profile` on LeViT-128S, EfficientFormer-L1 and FastViT-T8
(live random weights), fp32 and int8, ONNX and TFLite, on this host.

Per artifact: the top-5 op types by time, the per-op sum vs the end-to-end median of the same
number of unprofiled runs (the trust gate: within ±20 %), and the share of time in ops tied to
a module of the timm model. Artifacts are exported once into --work (resumable); rows are kept
in bench/results/layer_profile.json. Run it on a quiet machine: the profiles are timings.

    python bench/layer_profile.py [--models …] [--runs 30] [--threads 2] [--work DIR]
                                  [--update-readme]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from readme_section import replace_section

RESULTS = Path(__file__).with_name("results") / "layer_profile.json"
MODELS = ("levit_128s", "efficientformer_l1", "fastvit_t8")
FORMATS = ("onnx", "tflite")
QUANTS = ("fp32", "int8")


def _artifacts(model: str, quant: str, work: Path) -> dict[str, Path]:
    from edgekit.artifact import artifact_name
    from edgekit.pipeline import ExportRequest, export_model

    have = {f: work / artifact_name(model, quant, f) for f in FORMATS}
    missing = tuple(f for f, p in have.items() if not (p / "layers.json").is_file())
    if missing:
        export_model(ExportRequest(model=model, formats=missing, quant=quant, out=work))
    return have


def run(models: list[str], runs: int, threads: int, work: Path) -> None:
    from edgekit.layers.profile import profile_artifact

    rows: list[dict[str, Any]] = (json.loads(RESULTS.read_text())["rows"]
                                  if RESULTS.is_file() else [])
    done = {(r["model"], r["quant"], r["format"]) for r in rows}
    for model in models:
        for quant in QUANTS:
            if all((model, quant, f) in done for f in FORMATS):
                continue
            arts = _artifacts(model, quant, work)
            for fmt, path in arts.items():
                if (model, quant, fmt) in done:
                    continue
                p = profile_artifact(path, runs=runs, threads=threads)
                row = {"model": model, "quant": quant, "format": fmt,
                       "runtime": f"{p['runtime']} {p['runtime_version']}",
                       "ops": len(p["rows"]), "total_ms": p["total_ms"],
                       "end_to_end_median_ms": p["end_to_end_median_ms"], "gap": p["gap"],
                       "gap_ok": p["gap_ok"], "module_coverage": p["module_coverage"],
                       "top_op_types": p["by_op_type"][:5], "top_blocks": p["by_block"][:5]}
                print(f"{model} {quant} {fmt}: sum {p['total_ms']:.2f} ms vs "
                      f"{p['end_to_end_median_ms']:.2f} ms ({p['gap']:+.0%}), modules "
                      f"{p['module_coverage']:.1%}", flush=True)
                rows.append(row)
                RESULTS.parent.mkdir(exist_ok=True)
                RESULTS.write_text(json.dumps({"rows": rows}, indent=1) + "\n")


DEMO = Path(__file__).with_name("results") / "layer_diff_demo.json"
DEMO_MODEL = "fastvit_t8"
DEMO_BUDGET = 0.999  # --keep-float auto's hold-out cosine budget: tight enough to pick sites


def diff_demo(work: Path) -> dict[str, Any]:
    """int8 ONNX of FastViT-T8 with `--keep-float none` vs `auto` (budget 0.999): the first
    layer the none artifact's diff puts under the budget, and whether `auto` kept it float."""
    from edgekit.layers.diff import diff_artifact
    from edgekit.pipeline import ExportRequest, export_model
    from edgekit.quant.config import QuantConfig

    out: dict[str, Any] = {"model": DEMO_MODEL, "budget": DEMO_BUDGET}
    for keep in ("none", "auto"):
        dest = work / f"demo-{keep}"
        (o,) = export_model(ExportRequest(
            model=DEMO_MODEL, formats=("onnx",), quant="int8", out=dest,
            quant_config=QuantConfig(keep_float=keep, min_cosine=DEMO_BUDGET)))
        d = diff_artifact(o.artifact.path, threshold=DEMO_BUDGET)
        out[keep] = {"first_below": d["first_below"], "kept": d["kept_sites"],
                     "output_cosine": next(r["cosine"] for r in d["layers"]
                                           if r["module"] == ""),
                     "layers": [{k: r[k] for k in ("module", "cosine", "sqnr_db")}
                                for r in d["layers"]]}
    DEMO.write_text(json.dumps(out, indent=1) + "\n")
    print(render_demo(out), flush=True)
    return out


DEMO_BARS = (0.999, 0.995, 0.99, 0.985, 0.98)


def _kept(module: str, picked: list[str]) -> bool:
    return any(module == m or module.startswith(m + ".") for m in picked)


def render_demo(d: dict[str, Any]) -> str:
    """The none artifact's first layer under each bar, and whether `auto` kept it float."""
    picked = [m for m, why in d["auto"]["kept"].items() if "sensitivity" in why]
    auto = {r["module"]: r["cosine"] for r in d["auto"]["layers"]}
    lines = [f"{d['model']} int8 ONNX, `--keep-float auto` with a hold-out budget of "
             f"{d['budget']}: {len(picked)} modules kept float by the sensitivity search; "
             f"output cosine (mean over the golden photos) {d['none']['output_cosine']:.4f} "
             f"with `--keep-float none`, {d['auto']['output_cosine']:.4f} with `auto`.", "",
             "| bar | first layer under it (`--keep-float none`) | cosine none → auto | "
             "kept float by `auto` |", "| --- | --- | --- | --- |"]
    for bar in DEMO_BARS:
        first = next((r for r in d["none"]["layers"] if r["cosine"] < bar), None)
        if first is None:
            lines.append(f"| {bar} | none | | |")
            continue
        m = first["module"]
        lines.append(f"| {bar} | `{m}` | {first['cosine']:.4f} → {auto.get(m, float('nan')):.4f}"
                     f" | {'yes' if _kept(m, picked) else 'no'} |")
    return "\n".join(lines)


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["Live random weights, 224×224, batch 1, 2 threads, this x86 host (AVX2, shared). "
             "sum = per-op medians summed; e2e = median of as many unprofiled runs; "
             "modules = share of time in ops tied to a module of the timm model. "
             "Top op types: share of the per-op sum.", "",
             "| model | mode | format | sum / e2e ms (gap) | modules | top-5 op types |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        top = ", ".join(f"{t['op']} {t['share']:.0%}" for t in r["top_op_types"])
        gap = f"{r['gap']:+.0%}" + ("" if r["gap_ok"] else " ✗")
        lines.append(f"| {r['model']} | {r['quant']} | {r['format']} | "
                     f"{r['total_ms']:.2f} / {r['end_to_end_median_ms']:.2f} ({gap}) | "
                     f"{r['module_coverage']:.1%} | {top} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgekit-layer-profile"))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--render-only", action="store_true")
    ap.add_argument("--diff-demo", action="store_true",
                    help="only the keep-float none vs auto diff of FastViT-T8 int8 ONNX")
    args = ap.parse_args()
    if args.diff_demo:
        diff_demo(args.work)
    elif not args.render_only:
        run(args.models.split(","), args.runs, args.threads, args.work)
    if args.update_readme and RESULTS.is_file():
        replace_section("layer-profile", render(json.loads(RESULTS.read_text())["rows"]))
    if args.update_readme and DEMO.is_file():
        replace_section("layer-diff-demo", render_demo(json.loads(DEMO.read_text())))


if __name__ == "__main__":
    main()
