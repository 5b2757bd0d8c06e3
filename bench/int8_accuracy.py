"""int8 top-1 on real held-out data (Fashion-MNIST test, 10k) per target, with the ablation.

For every small config trained here (`fmnist_*`): the fp32 artifact's top-1 in ONNX Runtime,
then int8 artifacts for ONNX Runtime, LiteRT and ExecuTorch under each recipe below, each
evaluated in its own runtime on all 10 000 test images. Calibration: 64 training images.

| recipe      | what it is                                                                |
| naive       | min/max ranges, everything the target's quantizer can quantize is int8    |
|             | (ONNX: `quantize_static` defaults = all ops QDQ, s8 activations)          |
| percentile  | 99.99th-percentile activation ranges (ONNX: fused plan from here on)      |
| mse/kl      | histogram ranges minimising the L2 error (PT2E) / KL (ONNX: entropy)      |
|             | (naive … mse/kl: `--int8-plan all`, no op kept float for speed)           |
| edgekit     | the defaults: per-target ranges (ONNX percentile, PT2E mse) + RepQ-ViT      |
|             | LayerNorm/bridge reparameterization + `--keep-float auto` + `--int8-plan  |
|             | fast` (ops slower in int8 stay float: accuracy must not suffer from it)   |

    python bench/int8_accuracy.py [--models fmnist_levit,...] [--update-readme]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.models.fmnist import SMALL_CONFIGS, training_record
from readme_section import replace_section

from edgekit.accuracy import evaluate_artifact
from edgekit.pipeline import ExportRequest, export_model
from edgekit.quant.config import QuantConfig

RESULTS = Path(__file__).with_name("results") / "int8_accuracy.json"
FORMATS = ("onnx", "tflite", "executorch")
# recipe -> format -> QuantConfig kwargs (None: recipe does not exist for that format)
PLAIN = {"keep_float": "none", "repq": False, "plan": "all"}
RECIPES: dict[str, dict[str, dict[str, Any] | None]] = {
    "naive": {
        "onnx": {"calib_method": "minmax", **PLAIN, "extra": {"ort_plan": "ort-default"}},
        "tflite": {"calib_method": "minmax", **PLAIN},
        "executorch": {"calib_method": "minmax", **PLAIN}},
    "percentile": {f: {"calib_method": "percentile", **PLAIN} for f in FORMATS},
    "mse/kl": {"onnx": {"calib_method": "entropy", **PLAIN},
               "tflite": {"calib_method": "mse", **PLAIN},
               "executorch": {"calib_method": "mse", **PLAIN}},
    "edgekit": {f: {} for f in FORMATS},
}


def run_model(name: str, out: Path, recipes: list[str],
              save: Callable[[list[dict[str, Any]]], None]) -> list[dict[str, Any]]:
    rows = []
    (fp32,) = export_model(ExportRequest(model=name, formats=("onnx",), out=out / "fp32"))
    acc = evaluate_artifact(fp32.artifact.path)
    rows.append({"model": name, "format": "onnx", "recipe": "fp32", "top1": acc.top1})
    print(f"{name} fp32 onnx: {acc.top1:.2f}", flush=True)
    for recipe in recipes:
        for fmt in FORMATS:
            kwargs = RECIPES[recipe][fmt]
            if kwargs is None:
                continue
            started = time.perf_counter()
            (o,) = export_model(ExportRequest(
                model=name, formats=(fmt,), quant="int8", out=out / recipe.replace("/", "-"),
                quant_config=QuantConfig(calib_n=64, **kwargs)))
            q = o.artifact.manifest.exporter["quantization"]
            acc = evaluate_artifact(o.artifact.path)
            rows.append({"model": name, "format": fmt, "recipe": recipe, "top1": acc.top1,
                         "calib_method": q.get("calib_method"),
                         "float_sites": len(q.get("float_sites") or []),
                         "holdout_cosine": q.get("holdout_cosine"),
                         "export_s": round(time.perf_counter() - started, 1)})
            print(f"{name} {recipe} {fmt}: {acc.top1:.2f} (float sites "
                  f"{rows[-1]['float_sites']})", flush=True)
            save(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", default=",".join(SMALL_CONFIGS.list()))
    ap.add_argument("--recipes", default=",".join(RECIPES))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true")
    args = ap.parse_args()
    if args.readme_only:
        render(json.loads(RESULTS.read_text()))
        return
    recipes = args.recipes.split(",")
    rerun = {(m, r) for m in args.models.split(",") for r in ("fp32", *recipes)}
    kept: list[dict[str, Any]] = []
    if RESULTS.is_file():  # keep the other (model, recipe) rows when re-running a subset
        kept = [r for r in json.loads(RESULTS.read_text())["rows"]
                if (r["model"], r["recipe"]) not in rerun]
    done: list[dict[str, Any]] = []

    def save(partial: list[dict[str, Any]]) -> None:  # after every artifact
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps({"rows": kept + done + partial}, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="edgekit-int8-acc-") as tmp:
        for name in args.models.split(","):
            done += run_model(name, Path(tmp) / name, recipes, save)
    if args.update_readme:
        render({"rows": kept + done})


def render(payload: dict[str, Any]) -> None:
    rows = payload["rows"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    recipes = [r for r in RECIPES if any(x["recipe"] == r for x in rows)]
    lines = ["Top-1 % on the 10 000 Fashion-MNIST test images, each artifact run in its own "
             "runtime (ONNX Runtime, LiteRT, ExecuTorch); 64 training images for calibration. "
             "fp32 = the fp32 ONNX artifact. Core ML W8A8 artifacts are built and "
             "structure-checked, but Core ML prediction needs macOS, so no Core ML column. "
             "\"n float\" = sites left float: for edgekit, the `--int8-plan fast` speed sites "
             "(depthwise convs; ORT also activation matmuls and low-intensity convs) plus any "
             "the sensitivity analysis chose.", "",
             "| model | fp32 | recipe | " + " | ".join(f"{f} int8 (Δ)" for f in FORMATS) + " |",
             "| --- | ---: | --- | " + " | ".join("---:" for _ in FORMATS) + " |"]
    for model in models:
        fp32 = next(r["top1"] for r in rows if r["model"] == model and r["recipe"] == "fp32")
        rec = training_record(SMALL_CONFIGS.get(model))
        label = model + (f" ({rec['params'] / 1e6:.2f} M)" if rec else "")
        for recipe in recipes:
            cells = []
            for fmt in FORMATS:
                r = next((x for x in rows if x["model"] == model and x["recipe"] == recipe
                          and x["format"] == fmt), None)
                if r is None:
                    cells.append("—")
                    continue
                extra = f", {r['float_sites']} float" if r.get("float_sites") else ""
                cells.append(f"{r['top1']:.2f} ({r['top1'] - fp32:+.2f}{extra})")
            if any(c != "—" for c in cells):  # recipes not run for this model: no row
                lines.append(f"| {label} | {fp32:.2f} | {recipe} | " + " | ".join(cells) + " |")
    replace_section("int8-accuracy", "\n".join(lines))


if __name__ == "__main__":
    main()
