"""int8 vs fp32 latency per runtime, same run, interleaved (`edgekit bench --compare`).

For each model: fp32 and int8 artifacts for ONNX Runtime, LiteRT and ExecuTorch; int8 with
edgekit's default `--int8-plan fast` and with `--int8-plan all` (every op the target's
quantizer can take is int8: what `fast` bought), plus ORT's stock `quantize_static` defaults.
All artifacts of a model are timed in one interleaved bench run (A B C … A B C), so ratios are
within one run on this shared machine.

    python bench/int8_speed.py [--models efficientformer_l1,levit_128s,fastvit_t8] [--update-readme]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from readme_section import replace_section
from timing_args import other_models_rows, timing_config, timing_parser

from edgekit.bench.run import run_bench
from edgekit.pipeline import ExportRequest, export_model
from edgekit.quant.config import QuantConfig

MODELS = ("efficientformer_l1", "levit_128s", "fastvit_t8")
RESULTS = Path(__file__).with_name("results") / "int8_speed.json"
ALL = {"plan": "all"}
# (label, format, quant, QuantConfig keywords)
VARIANTS: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("onnx fp32", "onnx", "fp32", {}),
    ("onnx int8", "onnx", "int8", {}),
    ("onnx int8 --int8-plan all", "onnx", "int8", ALL),
    ("onnx int8 ORT defaults", "onnx", "int8", {**ALL, "extra": {"ort_plan": "ort-default"}}),
    ("tflite fp32", "tflite", "fp32", {}),
    ("tflite int8", "tflite", "int8", {}),
    ("tflite int8 --int8-plan all", "tflite", "int8", ALL),
    ("executorch fp32", "executorch", "fp32", {}),
    ("executorch int8", "executorch", "int8", {}),
    ("executorch int8 --int8-plan all", "executorch", "int8", ALL),
)


def export_variants(model: str, out: Path, reuse: bool) -> dict[str, dict[str, Any]]:
    from edgekit.artifact import Artifact, artifact_name

    made = {}
    for label, fmt, quant, quant_kwargs in VARIANTS:
        # timed on this x86 host, so the speed plan is x86's (the default --int8-isa is arm64)
        qc = QuantConfig(calib="photos", calib_n=32, keep_float="none", isa="x86_64",
                         **quant_kwargs) if quant == "int8" else None
        where = out / label.replace(" ", "_").replace("--", "")
        existing = where / artifact_name(model, quant, fmt)
        if reuse and (existing / "manifest.json").is_file():
            art = Artifact.open(existing)
        else:
            (o,) = export_model(ExportRequest(model=model, formats=(fmt,), quant=quant,
                                              out=where, n_golden=8, quant_config=qc))
            art = o.artifact
        v = art.manifest.validation
        made[label] = {"path": art.path, "format": fmt, "quant": quant,
                       "plan": quant_kwargs.get("plan", "fast") if quant == "int8" else None,
                       "cosine": v.cosine if v else None,
                       "top1_agreement": v.top1_agreement if v else None,
                       "size_mb": round(art.manifest.size_bytes / 2**20, 2)}
        print(f"{model} {label}: exported, cosine {made[label]['cosine']}", flush=True)
    return made


def main() -> None:
    ap = timing_parser(__doc__, MODELS)
    ap.add_argument("--out", type=Path, default=None,
                    help="Keep the artifacts here (default: a temporary directory).")
    ap.add_argument("--reuse", action="store_true",
                    help="Time the artifacts already in --out instead of re-exporting.")
    args = ap.parse_args()
    if args.readme_only:
        render(json.loads(RESULTS.read_text()))
        return
    cfg = timing_config(args)
    models = args.models.split(",")
    rows = other_models_rows(RESULTS, models)
    with tempfile.TemporaryDirectory(prefix="edgekit-int8-speed-") as tmp:
        root = args.out or Path(tmp)
        for model in models:
            made = export_variants(model, root / model, args.reuse)
            labels = list(made)
            results = run_bench([made[k]["path"] for k in labels], cfg=cfg, compare=True)
            for label, r in zip(labels, results, strict=True):
                rows.append({"model": model, "variant": label, "rounds": args.rounds,
                             **{k: v for k, v in made[label].items() if k != "path"},
                             "median_ms": r["median_ms"], "stable": r.get("stable"),
                             "runtime": r["runtime"]})
                print(f"{model} {label}: {r['median_ms']:.2f} ms", flush=True)
    payload = {"threads": args.threads, "rounds": args.rounds, "rows": rows}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    if args.update_readme:
        render(payload)


def render(payload: dict[str, Any]) -> None:
    rows = payload["rows"]
    lines = [f"Batch 1, {payload['threads']} threads, this 2-core x86 machine (AVX512-VNNI); all "
             "artifacts of a model timed interleaved in one `edgekit bench --compare` run; "
             "speed-up = fp32 median / int8 median of the same runtime. Live random weights, "
             "calibrated on the built-in photos; cosine = worst golden sample vs timm fp32. "
             "`int8` is the default `--int8-plan fast`; `--int8-plan all` quantizes every op "
             "the target's quantizer takes (the ablation).", "",
             "| model | artifact | median ms | speed-up vs same-runtime fp32 | "
             "vs fastest fp32 | cosine | MB | stable |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        fp32 = {r["format"]: r["median_ms"] for r in mine if r["quant"] == "fp32"}
        fastest = min(fp32.values())
        for r in mine:
            same = fp32[r["format"]] / r["median_ms"]
            lines.append(f"| {model} | {r['variant']} | {r['median_ms']:.2f} | "
                         f"{same:.2f}× | {fastest / r['median_ms']:.2f}× | "
                         f"{r['cosine']:.4f} | {r['size_mb']} | "
                         f"{'yes' if r.get('stable') else 'no (CV > 10 %)'} |")
    replace_section("int8-speed", "\n".join(lines))


if __name__ == "__main__":
    main()
