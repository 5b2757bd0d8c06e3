"""Full-integer TFLite (`--to tflite --quant int-only`) for NPUs and microcontrollers: fidelity
in the two TFLite runtimes, Fashion-MNIST accuracy, TFLite Micro's arena, and Arm Vela per
Ethos-U accelerator. One JSON (bench/results/integer_tflite.json), two README tables.

- integer-only: no float tensor in the file (`edgekit inspect --integer-only`).
- cosine vs timm fp32 (mean and worst) on 50 inputs — photo views for the full-size live-weight
  models, held-out test images for the Fashion-MNIST configs — in ai-edge-litert (XNNPACK) and
  in TFLite Micro's interpreter (its reference integer kernels, what an MCU build links).
- Fashion-MNIST top-1 on the 10k test set in LiteRT beside timm fp32.
- TFLite Micro tensor arena (its recording allocator).
- Vela 5.2 for ethos-u55-128, ethos-u65-256, ethos-u85-256 (explicit default system configs):
  ops on the NPU, MACs on the NPU (Vela's scheduled MACs / the model's), cycles, estimated ms at
  the configuration's clock, SRAM and flash. Estimates, not measurements.

    python bench/integer_tflite.py [--models ...] [--update-readme | --readme-only]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgekit.exporters.tflite_integer import integer_violations
from edgekit.models.source import load_source
from readme_section import replace_section

from edgekit.accuracy import evaluate_artifact
from edgekit.artifact import Artifact
from edgekit.data import golden_inputs
from edgekit.isolation import run_isolated
from edgekit.npu import compile_for_npu
from edgekit.pipeline import ExportRequest, export_model
from edgekit.runtime import RUNTIMES
from edgekit.validate import logit_cosine, runtime_extras

RESULTS = Path(__file__).with_name("results") / "integer_tflite.json"
MODELS = ("levit_128s", "efficientformer_l1", "fmnist_levit", "fmnist_efficientformer",
          "fmnist_mobilevit")
NPUS = ("ethos-u55-128", "ethos-u65-256", "ethos-u85-256")
N_INPUTS = 50


def _outputs(runtime: str, model_path: str, x: np.ndarray) -> np.ndarray:
    """Isolated-child body: the runtime's outputs on each input (batch 1)."""
    session = RUNTIMES.get(runtime)().load(Path(model_path), None)
    ((name, _),) = session.inputs.items()
    return np.stack([next(iter(session.run({name: x[i:i + 1]}).values()))[0]
                     for i in range(len(x))])


def run_model(name: str, work: Path) -> dict[str, Any]:
    out = work / name
    path = out / f"{name}.int-only.tflite"
    if not (path / "manifest.json").exists():
        export_model(ExportRequest(model=name, formats=("tflite",), quant="int-only", out=out))
    art = Artifact.open(path)
    src = load_source(name)
    x = golden_inputs(src.data_config, N_INPUTS, seed=1, noise_fraction=0.0).astype(np.float32)
    with torch.no_grad():
        ref = np.concatenate([src.model(torch.from_numpy(x[i:i + 1])).numpy()
                              for i in range(len(x))])
    row: dict[str, Any] = {"model": name, "inputs": len(x),
                           "integer_only": not integer_violations(art.model_path),
                           "size_mb": round(art.model_path.stat().st_size / 2**20, 2),
                           "macs": int((art.manifest.flops or 0) // 2), "cosine": {}}
    for runtime in ("litert", "tflm"):
        got = run_isolated(_outputs, runtime, str(art.model_path), x,
                           what=f"{runtime} on {name}", timeout=3600)
        cos = [logit_cosine(got[i], ref[i]) for i in range(len(x))]
        row["cosine"][runtime] = {"mean": float(np.mean(cos)), "min": float(np.min(cos))}
    row["tflm_arena_bytes"] = runtime_extras(art, "tflm")["tflm_arena_bytes"]
    if src.data_config.get("dataset") == "fmnist":
        from edgekit.models.fmnist import SMALL_CONFIGS, evaluate_torch

        row["top1"] = {"fp32": 100 * evaluate_torch(load_source(name).model,
                                                    SMALL_CONFIGS.get(name)),
                       "int-only": evaluate_artifact(path).top1}
    row["npu"] = {}
    for npu in NPUS:
        s = compile_for_npu(path, npu)
        row["npu"][npu] = {"npu_ops": s.npu_ops, "cpu_ops": s.cpu_ops,
                           "cpu_op_types": s.cpu_op_types, "macs": s.macs,
                           "cycles": s.cycles_total, "ms": s.inference_ms,
                           "sram_bytes": s.sram_bytes, "flash_bytes": s.flash_bytes,
                           "dram_bytes": s.dram_bytes, "clock_hz": s.clock_hz,
                           "system_config": s.system_config, "memory_mode": s.memory_mode}
    print(f"{name}: integer-only {row['integer_only']}, cosine litert "
          f"{row['cosine']['litert']['mean']:.4f} tflm {row['cosine']['tflm']['mean']:.4f}, "
          f"arena {row['tflm_arena_bytes']}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgekit-integer-tflite"))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true")
    args = ap.parse_args()
    if args.readme_only:
        render(json.loads(RESULTS.read_text()))
        return
    models = args.models.split(",")
    old = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    rows = [r for r in old if r["model"] not in models]
    for model in models:
        rows.append(run_model(model, args.work))
        rows.sort(key=lambda r: MODELS.index(r["model"]) if r["model"] in MODELS else 99)
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    if args.update_readme:
        render({"rows": rows})


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f}" if n >= 10240 else f"{n / 1024:.1f}"


def render(payload: dict[str, Any]) -> None:
    rows = payload["rows"]
    lines = [f"`--to tflite --quant int-only`, int8 I/O. cosine = vs timm fp32 on {N_INPUTS} "
             "inputs (photo views for the full-size live-weight models, held-out test images "
             "for the Fashion-MNIST configs), mean / worst; top-1 on the 10k Fashion-MNIST test "
             "set in LiteRT; arena = the tensor arena TFLite Micro allocated.", "",
             "| model | integer-only | cosine LiteRT | cosine TFLite Micro | top-1 fp32 → "
             "int-only | TFLM arena KiB | file MB |",
             "| --- | :---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        c = r["cosine"]
        top1 = (f"{r['top1']['fp32']:.2f} → {r['top1']['int-only']:.2f}" if "top1" in r
                else "—")
        lines.append(f"| {r['model']} | {'yes' if r['integer_only'] else 'NO'} | "
                     f"{c['litert']['mean']:.4f} / {c['litert']['min']:.4f} | "
                     f"{c['tflm']['mean']:.4f} / {c['tflm']['min']:.4f} | {top1} | "
                     f"{_kib(r['tflm_arena_bytes'])} | {r['size_mb']} |")
    replace_section("integer-tflite", "\n".join(lines))
    lines = ["Vela 5.2, each accelerator with its default system configuration and memory mode "
             "named explicitly (U55: High_End_Embedded, Shared_Sram; U65: Client_Server, "
             "Dedicated_Sram_384KB; U85: SYS_DRAM_Mid, Dedicated_Sram_384KB). ops / MACs on NPU: "
             "share of the file's operators Vela puts on the NPU, and Vela's scheduled MACs over "
             "the model's. ms: Vela's cycle estimate at the configuration's clock — an estimate, "
             "not a measurement.", "",
             "| model | NPU | ops on NPU | MACs on NPU | cycles | est. ms | SRAM KiB | "
             "flash / DRAM KiB |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        for npu, v in r["npu"].items():
            total = v["npu_ops"] + v["cpu_ops"]
            mac_share = min(1.0, v["macs"] / r["macs"]) if r.get("macs") else float("nan")
            cpu = "" if not v["cpu_ops"] else " (CPU: " + ", ".join(
                f"{k}×{n}" for k, n in v["cpu_op_types"].items()) + ")"
            lines.append(f"| {r['model']} | {npu} | {v['npu_ops']}/{total} "
                         f"({v['npu_ops'] / max(1, total):.0%}){cpu} | {mac_share:.0%} | "
                         f"{v['cycles']:,} | {v['ms']:.2f} | {_kib(v['sram_bytes'])} | "
                         f"{_kib(v['flash_bytes'] + v['dram_bytes'])} |")
    replace_section("integer-tflite-vela", "\n".join(lines))


if __name__ == "__main__":
    main()
