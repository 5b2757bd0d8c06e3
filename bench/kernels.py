"""The integer-only C kernels (kernels_arm/): instructions per call on aarch64, llvm-mca cycles,
and the host x86 scalar vs auto-vectorized paths — no ARM hardware here, so no ARM times.

- aarch64: `edgekit.kernels.count` — exact instructions per call at LeViT-128S-like shapes from
  qemu-aarch64's block logs (scalar / autovec / NEON / dotprod), and llvm-mca's cycles per
  element for Cortex-A55 and Cortex-A76 over the same executed blocks.
- x86 host: the same kernels' scalar vs autovec paths, instructions counted exactly by
  valgrind's callgrind (`--toggle-collect=<kernel>`), and timed by the host `ek_bench`
  (median of ≥ 50 samples after ≥ 0.5 s warm-up, one core).
- the whole LeViT-128S integer-only graph on the host: the numpy int64 reference alone vs with
  the kernel fast path (`run_reference(..., kernels=True)`, bit-exact).

    python bench/kernels.py [--update-readme] [--readme-only]
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from readme_section import replace_section

from edgekit.kernels.count import COUNT_SHAPES, MCA_CPUS, count

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "kernels_arm"
RESULTS = Path(__file__).with_name("results") / "kernels.json"
LABELS = {"s8_gemm_requant": "s8 GEMM + requant", "s8_dwconv3x3_requant": "depthwise 3×3",
          "s8_shiftmax": "Shiftmax", "s8_shiftgelu": "ShiftGELU", "s8_ilayernorm": "I-LayerNorm",
          "s8_avgpool_requant": "avg-pool 3×3", "s8_add_requant": "residual add",
          "s8_hardswish": "Hardswish", "s8_addconst_requant": "constant add",
          "s8_mulconst_requant": "constant multiply", "s8_matmul_requant": "attention matmul",
          "s8_conv2d_requant": "convolution (im2col)", "s8_mean_requant": "mean",
          "x8_transpose": "transpose", "x8_lut": "table lookup"}


def build() -> None:
    subprocess.run(["make", "-C", str(KERNELS), f"PYTHON={sys.executable}", "bench"], check=True)


def callgrind(binary: Path, op: str, shape: str, path: str) -> int:
    """Exact instructions of one call of ek_<op>__<path> on the host (valgrind callgrind)."""
    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes.txt"
        shapes.write_text(f"{op} {shape}\n")
        out = Path(tmp) / "cg.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        f"--toggle-collect=ek_{op}__{path}", str(binary), str(shapes),
                        "--once", "--paths", path], check=True, capture_output=True)
        m = re.search(r"^(?:summary|totals): (\d+)", out.read_text(), re.M)
        assert m, "no totals in the callgrind output"
        return int(m.group(1))


def host_timing(binary: Path) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        shapes = Path(tmp) / "shapes.txt"
        shapes.write_text("".join(f"{op} {s}\n" for op, (s, _) in COUNT_SHAPES.items()))
        proc = subprocess.run([str(binary), str(shapes), "--runs", "50", "--cpu", "0"],
                              check=True, capture_output=True, text=True)
    out: dict[str, dict[str, float]] = {}
    for r in json.loads(proc.stdout):
        assert r["validated"] in (None, True), r["kernel"]
        out.setdefault(r["op"], {})[r["path"]] = r["median_ms"]
    return out


def whole_graph(model: str = "levit_128s", n: int = 3) -> dict[str, Any]:
    """Median seconds of the int-only graph on one image: numpy reference vs kernel fast path."""
    import numpy as np
    import torch
    from edgekit.models.source import load_source

    from edgekit.data import golden_inputs
    from edgekit.intonly import graph as ig
    from edgekit.intonly.convert import convert
    from edgekit.pipeline import _calibration
    from edgekit.quant.config import QuantConfig
    from edgekit.transforms.base import DEFAULT_PASSES, DeployPipeline

    src = load_source(model)
    _, calib, _ = _calibration(QuantConfig(), src.data_config, lambda s: None)
    x = golden_inputs(src.data_config, n, seed=1, noise_fraction=0.0)
    example = torch.from_numpy(x[:1])
    DeployPipeline(DEFAULT_PASSES).run(src.model, torch.cat([example, example]))
    graph = convert(src.model, example, calib.samples)
    times: dict[str, list[float]] = {"reference": [], "kernels": []}
    exact = True
    for i in range(n):
        outs = {}
        for mode in ("reference", "kernels"):
            t0 = time.perf_counter()
            outs[mode] = ig.run_reference(graph, x[i:i + 1], kernels=mode == "kernels")
            times[mode].append(time.perf_counter() - t0)
        exact &= bool(np.array_equal(outs["reference"], outs["kernels"]))
    return {"model": model, "images": n, "bit_exact": exact,
            **{f"{k}_s": float(np.median(v)) for k, v in times.items()}}


def measure() -> dict[str, Any]:
    build()
    arm = count(KERNELS / "build/a64/ek_bench")
    host_bin = KERNELS / "build/host/ek_bench"
    host_counts = {op: {p: callgrind(host_bin, op, shape, p) for p in ("scalar", "autovec")}
                   for op, (shape, _) in COUNT_SHAPES.items()}
    return {"arm": arm, "host_instructions": host_counts, "host_ms": host_timing(host_bin),
            "whole_graph": whole_graph()}


def render(res: dict[str, Any]) -> str:
    arm = res["arm"]
    lines = [
        "aarch64 instructions per call, counted exactly from qemu-aarch64's block logs "
        "(`make count`), at LeViT-128S-like shapes; ratio = scalar ÷ path. Cycles per element: "
        "llvm-mca 14 over the same executed blocks (optimistic: L1 hits). Elements are MACs for "
        "the GEMM and depthwise conv, outputs otherwise.", "",
        "| kernel | shape | scalar | autovec | NEON | NEON dotprod | NEON i8mm | A55 cyc/elem "
        "scalar → best | A76 cyc/elem scalar → best |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for op, label in LABELS.items():
        r = arm[op]
        s = r["scalar"]
        shape = arm["shapes"][op]["shape"]

        def cell(path: str, r: dict[str, Any] = r, s: int = s) -> str:
            return f"{r[path] / 1e6:.2f} M ({s / r[path]:.1f}×)" if path in r else "—"

        best = "neondot" if "neondot" in r else "neon"  # A55/A76 have dotprod, not i8mm
        mca = arm["llvm_mca_cycles_per_element"][op]
        lines.append(f"| {label} | `{shape}` | {s / 1e6:.2f} M | {cell('autovec')} | "
                     f"{cell('neon')} | {cell('neondot')} | {cell('i8mm')} | "
                     + " | ".join(f"{mca[c]['scalar']:.2f} → {mca[c][best]:.2f}"
                                  for c in MCA_CPUS) + " |")
    hc, hm = res["host_instructions"], res["host_ms"]
    lines += ["", "x86-64 host (this machine, baseline SSE2 build): the same C, scalar "
              "(vectorizer off) vs what gcc -O3 auto-vectorizes; instructions from valgrind "
              "callgrind, time = ek_bench median on one core.", "",
              "| kernel | scalar instr | autovec instr | scalar ms | autovec ms | speed-up |",
              "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for op, label in LABELS.items():
        lines.append(f"| {label} | {hc[op]['scalar'] / 1e6:.2f} M | "
                     f"{hc[op]['autovec'] / 1e6:.2f} M | {hm[op]['scalar']:.3f} | "
                     f"{hm[op]['autovec']:.3f} | {hm[op]['scalar'] / hm[op]['autovec']:.1f}× |")
    w = res["whole_graph"]
    lines += ["", f"Whole {w['model']} integer-only graph on the host, one image: numpy int64 "
              f"reference {w['reference_s']:.2f} s, with the kernel fast path "
              f"{w['kernels_s']:.2f} s ({w['reference_s'] / w['kernels_s']:.1f}×), outputs "
              f"{'bit-identical' if w['bit_exact'] else 'DIFFERENT'} on {w['images']} images."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true", help="Re-render from saved results.")
    args = ap.parse_args()
    if args.readme_only:
        res = json.loads(RESULTS.read_text())
    else:
        res = measure()
        RESULTS.write_text(json.dumps(res, indent=1) + "\n")
    print(render(res))
    if args.update_readme or args.readme_only:
        replace_section("kernels-arm", render(res))


if __name__ == "__main__":
    main()
