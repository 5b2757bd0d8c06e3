"""The precision ladder per target: fp32, fp16, w8, w8a16, int8 (and int8 with mixed int16).

accuracy  every Fashion-MNIST config trained here × mode × {onnx, tflite, executorch}: top-1 on
          the 10 000 test images, each artifact run in its own runtime; the int8 rows with
          `--keep-float auto` sites float (`--mixed float`) beside int16 (`--mixed int16`).
fullsize  LeViT-128S, EfficientFormer-L1, FastViT-T8 (live random weights) × mode × target:
          cosine vs timm fp32 (the artifact's validation: worst golden sample), file size, host
          latency (every artifact of a model timed interleaved in one `bench --compare` run:
          ratios within one run) and, with --arm, guest instructions per inference on
          qemu://cortex-a76 (1 thread; qemu wall time is never speed).

Every cell is a result or the refusal the CLI gives (quant/recipes.py WHY_NOT), so the tables
have no blank. Rows are kept between partial runs (resumable: bench/results/precision_*.json).

    python bench/precision.py [--accuracy] [--fullsize] [--arm] [--models …] [--update-readme]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from readme_section import replace_section

from edgekit.errors import EdgekitError
from edgekit.quant.config import QuantConfig

RESULTS = Path(__file__).with_name("results")
ACCURACY = RESULTS / "precision_accuracy.json"
FULLSIZE = RESULTS / "precision_fullsize.json"
TARGETS = ("onnx", "tflite", "executorch", "coreml")
MODES = ("fp32", "fp16", "w8", "w8a16", "int8")
# (label, mode, QuantConfig keywords or None)
VARIANTS: tuple[tuple[str, str, dict[str, Any] | None], ...] = (
    ("fp32", "fp32", None), ("fp16", "fp16", None), ("w8", "w8", None),
    ("w8a16", "w8a16", {}), ("int8", "int8", {"mixed": "float"}),
    ("int8 --mixed int16", "int8", {"mixed": "int16"}))
FULLSIZE_MODELS = ("levit_128s", "efficientformer_l1", "fastvit_t8")
ARM_CPU = "cortex-a76"


def _load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text())["rows"] if path.is_file() else []


def _save(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"rows": rows}, indent=2) + "\n")


def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["model"], row["variant"], row["format"]


def _export(model: str, fmt: str, mode: str, qkw: dict[str, Any] | None, out: Path,
            calib: str | None = None) -> tuple[Any, str | None]:
    """(artifact, None) or (None, the refusal / failure the CLI would print)."""
    from edgekit.pipeline import ExportRequest, export_model

    qc = QuantConfig(**({"calib": calib} if calib else {}), **qkw) if qkw is not None else None
    try:
        (o,) = export_model(ExportRequest(model=model, formats=(fmt,), quant=mode, out=out,
                                          quant_config=qc))
    except EdgekitError as exc:
        return None, exc.render()
    return o.artifact, None


def _cell(art: Any) -> dict[str, Any]:
    m = art.manifest
    v = m.validation
    q = m.exporter.get("quantization", {})
    return {"cosine": v.cosine if v else None, "validated": v.validated if v else None,
            "size_bytes": m.size_bytes, "path": str(art.path),
            "int16_sites": len(q.get("int16_nodes") or q.get("int16_sites") or []),
            "float_sites": len(q.get("excluded_nodes") or q.get("float_sites") or [])}


def accuracy(models: list[str], work: Path) -> None:
    from edgekit.accuracy import evaluate_artifact

    rows = _load(ACCURACY)
    done = {_key(r) for r in rows}
    for model in models:
        for label, mode, qkw in VARIANTS:
            for fmt in TARGETS:
                if (model, label, fmt) in done:
                    continue
                started = time.perf_counter()
                art, refused = _export(model, fmt, mode, qkw, work / label.replace(" ", "_"))
                row: dict[str, Any] = {"model": model, "variant": label, "mode": mode,
                                       "format": fmt}
                if art is None:
                    row["refused"] = refused
                elif fmt == "coreml":
                    row.update(_cell(art), top1=None, note="Core ML prediction needs macOS")
                else:
                    row.update(_cell(art), top1=evaluate_artifact(art.path).top1)
                row["seconds"] = round(time.perf_counter() - started, 1)
                print(f"{model} {label} {fmt}: {row.get('top1', row.get('refused'))}",
                      flush=True)
                rows.append(row)
                _save(ACCURACY, rows)


def fullsize(models: list[str], work: Path, arm: bool, rounds: int) -> None:
    from edgekit.bench.collectors import BenchConfig
    from edgekit.bench.run import run_bench

    rows = _load(FULLSIZE)  # resumable: cells already exported are kept, not redone
    for model in models:
        mine = {(_key(r)[1], _key(r)[2]): r for r in rows if r["model"] == model}
        for label, mode, qkw in VARIANTS[:-1]:  # mixed int16: accuracy table only
            for fmt in TARGETS:
                if (label, fmt) in mine:
                    continue
                art, refused = _export(model, fmt, mode, qkw, work / model / label,
                                       calib="photos")
                row: dict[str, Any] = {"model": model, "variant": label, "mode": mode,
                                       "format": fmt}
                row.update({"refused": refused} if art is None else _cell(art))
                print(f"{model} {label} {fmt}: {row.get('cosine', refused)}", flush=True)
                rows.append(row)
                mine[(label, fmt)] = row
                _save(FULLSIZE, rows)
        timed = [r for r in rows if r["model"] == model and r.get("path")
                 and r["format"] != "coreml" and "latency_ms" not in r
                 and Path(r["path"]).is_dir()]
        if timed:
            cfg = BenchConfig(threads=2, runs=20, min_seconds=0.5, rounds=rounds, retries=0)
            results = run_bench([Path(r["path"]) for r in timed], cfg=cfg, compare=True)
            for r, res in zip(timed, results, strict=True):
                r["latency_ms"], r["stable"] = res["median_ms"], res.get("stable")
            _save(FULLSIZE, rows)
        if arm:
            from edgekit.artifact import Artifact
            from edgekit.qemu import QemuDevice
            from edgekit.qemu.run import count_instructions

            dev = QemuDevice.from_url(f"qemu://{ARM_CPU}")
            for r in rows:
                if r["model"] != model or not r.get("path") or r["format"] == "coreml" \
                        or "arm_instructions" in r or not Path(r["path"]).is_dir():
                    continue
                try:
                    counted = count_instructions(dev, Artifact.open(Path(r["path"])))
                    r["arm_instructions"] = counted["instructions_per_inference"]
                except Exception as exc:  # noqa: BLE001 - a red cell, with its error
                    r["arm_error"] = f"{type(exc).__name__}: {exc}"[:300]
                print(f"{model} {r['variant']} {r['format']} on {ARM_CPU}: "
                      f"{r.get('arm_instructions', r.get('arm_error'))}", flush=True)
                _save(FULLSIZE, rows)


def _refusal(row: dict[str, Any]) -> str:
    """The CLI's reason, its first clause (the README's precision section has the rest)."""
    text = str(row["refused"]).split(": ", 2)[-1].split(" Fix:")[0]
    return "refused: " + text.split(" (")[0].split("; ")[0].rstrip(".")


def render_accuracy(rows: list[dict[str, Any]]) -> str:
    lines = ["Top-1 % on the 10 000 Fashion-MNIST test images, each artifact run in its own "
             "runtime; 64 training images calibrate the calibrated modes (w8a16, int8). "
             "`int8` = edgekit's default int8 (sensitive sites float); `int8 --mixed int16` = "
             "the same search with the sites it picks at int16 activations instead (ONNX; the "
             "other targets refuse it). Core ML: built and structure-checked, prediction needs "
             "macOS.", "",
             "| model | mode | " + " | ".join(TARGETS) + " |",
             "| --- | --- | " + " | ".join("---" for _ in TARGETS) + " |"]
    for model in dict.fromkeys(r["model"] for r in rows):
        fp32 = {r["format"]: r["top1"] for r in rows if r["model"] == model
                and r["variant"] == "fp32" and r.get("top1") is not None}
        for label, _, _ in VARIANTS:
            cells = []
            for fmt in TARGETS:
                r = next((x for x in rows if _key(x) == (model, label, fmt)), None)
                if r is None:
                    cells.append("not run")
                elif r.get("refused"):
                    cells.append(_refusal(r))
                elif r.get("top1") is None:
                    cells.append(f"built ({r['size_bytes'] / 2**20:.2f} MB), macOS to run")
                else:
                    delta = (f" ({r['top1'] - fp32[fmt]:+.2f})"
                             if fmt in fp32 and label != "fp32" else "")
                    sites = "".join(f", {r[k]} {k.split('_')[0]}" for k in
                                    ("int16_sites", "float_sites") if r.get(k))
                    cells.append(f"{r['top1']:.2f}{delta}{sites}")
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_fullsize(rows: list[dict[str, Any]]) -> str:
    lines = ["Live random weights, 224×224, batch 1. cosine = worst golden sample (real photos "
             "+ noise; calibrated modes: photos) vs timm fp32, in the artifact's runtime on "
             "this x86 host. ms = median, 2 threads, all artifacts of a model interleaved in "
             "one run (compare within a model only; AVX2-only host, shared). ARM = guest "
             f"instructions per inference on qemu://{ARM_CPU}, 1 thread (M = 10^6).", "",
             "| model | mode | " + " | ".join(f"{f} cos / MB / ms / ARM M" for f in TARGETS[:3])
             + " | coreml MB |", "| --- | --- | " + " | ".join("---" for _ in TARGETS) + " |"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for label, _, _ in VARIANTS[:-1]:
            cells = []
            for fmt in TARGETS:
                r = next((x for x in rows if _key(x) == (model, label, fmt)), None)
                if r is None:
                    cells.append("not run")
                elif r.get("refused"):
                    cells.append(_refusal(r))
                elif fmt == "coreml":
                    cells.append(f"{r['size_bytes'] / 2**20:.1f}")
                else:
                    ms = f"{r['latency_ms']:.2f}" if r.get("latency_ms") else "—"
                    insn = (f"{r['arm_instructions'] / 1e6:.0f}" if r.get("arm_instructions")
                            else ("error" if r.get("arm_error") else "—"))
                    cos = f"{r['cosine']:.4f}" if r.get("cosine") is not None else "—"
                    bad = "" if r.get("validated") is True else " ✗"
                    cells.append(f"{cos}{bad} / {r['size_bytes'] / 2**20:.1f} / {ms} / {insn}")
            lines.append(f"| {model} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_fastest(rows: list[dict[str, Any]]) -> str:
    """Per target and model: the fastest validated mode on x86 (ms) and on ARM (instructions)."""
    lines = ["| model | target | fastest on x86 (ms) | fastest on ARM (instructions) |",
             "| --- | --- | --- | --- |"]
    for model in dict.fromkeys(r["model"] for r in rows):
        for fmt in TARGETS[:3]:
            mine = [r for r in rows if r["model"] == model and r["format"] == fmt
                    and r.get("validated") is True]

            def best(metric: str, unit: str, scale: float, rs: list[dict[str, Any]]) -> str:
                have = [r for r in rs if r.get(metric)]
                if not have:
                    return "—"
                top = min(have, key=lambda r: r[metric])
                fp32 = next((r[metric] for r in have if r["variant"] == "fp32"), None)
                ratio = f", {fp32 / top[metric]:.2f}× fp32" if fp32 else ""
                if fp32 and fp32 / top[metric] < 1.05:
                    return f"fp32 (no mode is 5 % faster; best {top['variant']}{ratio})"
                return f"{top['variant']} ({top[metric] / scale:.2f} {unit}{ratio})"

            lines.append(f"| {model} | {fmt} | {best('latency_ms', 'ms', 1, mine)} | "
                         f"{best('arm_instructions', 'M', 1e6, mine)} |")
    return "\n".join(lines)


def main() -> None:
    from edgekit.models.fmnist import SMALL_CONFIGS

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--fullsize", action="store_true")
    ap.add_argument("--arm", action="store_true", help="count instructions on the ARM device")
    ap.add_argument("--models", default=None)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", type=Path, default=None, help="keep artifacts here")
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="edgekit-precision-") as tmp:
        work = args.out or Path(tmp)
        if args.accuracy:
            accuracy(args.models.split(",") if args.models else SMALL_CONFIGS.list(), work)
        if args.fullsize:
            fullsize(args.models.split(",") if args.models else list(FULLSIZE_MODELS), work,
                     args.arm, args.rounds)
    if args.update_readme:
        if ACCURACY.is_file():
            replace_section("precision-accuracy", render_accuracy(_load(ACCURACY)))
        if FULLSIZE.is_file():
            rows = _load(FULLSIZE)
            replace_section("precision-fullsize", render_fullsize(rows))
            replace_section("precision-fastest", render_fastest(rows))


if __name__ == "__main__":
    main()
