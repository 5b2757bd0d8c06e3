"""The ARM tables, from the emulated ARM device (`make arm-device`, edgekit/qemu):

numerics  the smallest member of every family × {onnx, tflite, executorch} × {fp32, int8},
          validated against timm fp32 on the host (x86 runtimes) and on qemu://cortex-a53 and
          qemu://cortex-a76 (the runtimes' aarch64 builds): cosine on ARM beside cosine on x86.
cost      guest instructions per inference (1 thread) of fp32 vs int8 per runtime for
          EfficientFormer-L1, LeViT-128S, FastViT-T8, MobileOne-S0 (with and without
          reparameterization) on cortex-a76 and cortex-a53; qemu wall time is never used.

plan      the int8 speed plan per ISA: FastViT-T8 and MobileOne-S0 int8 with `--int8-plan fast`
          (x86's slow-int8 kinds kept float) vs `all`, counted on cortex-a76 and cortex-a53.

    python bench/arm_device.py [--numerics] [--cost] [--plan] [--families levit,...]
                               [--models ...] [--tables-only] [--update-readme]

Results go to bench/results/arm_*.json (one row per cell, kept between partial runs).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgekit.models.families import FAMILIES
from readme_section import replace_section

from edgekit.artifact import Artifact
from edgekit.qemu import QemuDevice
from edgekit.qemu.run import count_instructions, validate_on

RESULTS = Path(__file__).with_name("results")
FORMATS = ("onnx", "tflite", "executorch")
QUANTS = ("fp32", "int8")
NUMERICS_CPUS = ("cortex-a53", "cortex-a76")
COST_CPUS = ("cortex-a76", "cortex-a53")
COST_MODELS = (("efficientformer_l1", True), ("levit_128s", True), ("fastvit_t8", True),
               ("mobileone_s0", True), ("mobileone_s0", False))


# The int8 speed plan per ISA: for each op kind `--int8-plan fast` keeps float on x86, the
# instructions of quantizing it anyway (`all`) vs keeping it float (`fast`), per ARM CPU.
PLAN_MODELS = ("fastvit_t8", "mobileone_s0")
PLAN_FORMATS = ("onnx", "tflite")
PLANS = ("fast", "all")


def export(model: str, quant: str, out: Path, reparam: bool = True,
           timeout: float = 3600, formats: tuple[str, ...] = FORMATS,
           extra: tuple[str, ...] = ()) -> tuple[dict[str, dict[str, Any]], str]:
    """format -> the export's JSON row (host validation), plus the error of a failed run."""
    cmd = [sys.executable, "-m", "edgekit.cli", "export", model, "--to", ",".join(formats),
           "--quant", quant, "--out", str(out), "--json", "--allow-mismatch", *extra]
    if not reparam:
        cmd.append("--no-reparam")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {}, f"timeout after {timeout:.0f} s"
    try:
        rows = json.loads(proc.stdout)
    except ValueError:
        return {}, proc.stderr.strip()[-300:]
    rows = rows if isinstance(rows, list) else [rows]
    return {r["format"]: r for r in rows}, ""


def _export_error(host: dict[str, Any] | None) -> str:
    """The error of a format that failed inside an otherwise successful export run."""
    error = (host or {}).get("error")
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    return str(error)[:300] if error else "export failed"


def _load(path: Path) -> list[dict[str, Any]]:
    return json.loads(path.read_text()) if path.exists() else []


def _save(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(rows, indent=1) + "\n")


def _upsert(rows: list[dict[str, Any]], row: dict[str, Any], keys: tuple[str, ...]) -> None:
    rows[:] = [r for r in rows if any(r.get(k) != row.get(k) for k in keys)] + [row]


def numerics(families: list[str], work: Path,
             quants: tuple[str, ...] = QUANTS) -> list[dict[str, Any]]:
    path = RESULTS / "arm_numerics.json"
    rows = _load(path)
    for fam in families:
        model = FAMILIES.get(fam).smallest
        for quant in quants:
            exported, err = export(model, quant, work / "numerics")
            for fmt in FORMATS:
                row: dict[str, Any] = {"family": fam, "model": model, "quant": quant,
                                       "format": fmt}
                host = exported.get(fmt)
                if host is None or host.get("error"):
                    row["error"] = err or json.dumps(host.get("error") if host else "missing")
                else:
                    row["x86"] = host["cosine"]
                    row["x86_validated"] = host["validated"]
                    art = Artifact.open(Path(host["artifact"]))
                    for cpu in NUMERICS_CPUS:
                        t = time.perf_counter()
                        try:
                            rep = validate_on(QemuDevice.from_url(f"qemu://{cpu}"), art)
                            row[cpu] = {"cosine": rep.cosine, "validated": rep.validated,
                                        "reason": rep.reason, "runtime": rep.runtime}
                        except Exception as exc:  # noqa: BLE001 - a red cell, with its error
                            row[cpu] = {"cosine": None, "validated": False,
                                        "reason": f"{type(exc).__name__}: {exc}"[:300]}
                        print(f"{model} {quant} {fmt} {cpu}: {row[cpu]} "
                              f"({time.perf_counter() - t:.0f} s)", flush=True)
                _upsert(rows, row, ("model", "quant", "format"))
                _save(path, rows)
    return rows


def _count_on_cpus(row: dict[str, Any], art: Artifact, label: str) -> None:
    """row[cpu] = the artifact's instruction count on each cost CPU (or the error)."""
    for cpu in COST_CPUS:
        try:
            row[cpu] = count_instructions(QemuDevice.from_url(f"qemu://{cpu}"), art)
        except Exception as exc:  # noqa: BLE001 - a red cell, with its error
            row[cpu] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        print(f"{label} {cpu}: {row[cpu]}", flush=True)


def cost(work: Path, models: list[str]) -> list[dict[str, Any]]:
    path = RESULTS / "arm_cost.json"
    rows = _load(path)
    for model, reparam in [(m, r) for m, r in COST_MODELS if m in models]:
        for quant in QUANTS:
            # Un-reparameterized MobileOne has 3-4× the quantized sites of the deployed graph
            # and its int8 sensitivity search ran past the hour's timeout: its int8 row counts
            # the all-int8 graph (--keep-float none), what the branches cost, not a deployable
            # accuracy.
            extra = ("--keep-float", "none") if quant == "int8" and not reparam else ()
            exported, err = export(model, quant, work / f"cost-{reparam}", reparam=reparam,
                                   extra=extra)
            for fmt in FORMATS:
                host = exported.get(fmt)
                row: dict[str, Any] = {"model": model, "reparam": reparam, "quant": quant,
                                       "format": fmt}
                if host is None or host.get("error"):
                    row["error"] = err or _export_error(host)
                else:
                    _count_on_cpus(row, Artifact.open(Path(host["artifact"])),
                                   f"{model} reparam={reparam} {quant} {fmt}")
                _upsert(rows, row, ("model", "reparam", "quant", "format"))
                _save(path, rows)
    return rows


def plan_study(work: Path) -> list[dict[str, Any]]:
    path = RESULTS / "arm_int8_plan.json"
    rows = _load(path)
    for model in PLAN_MODELS:
        for plan in PLANS:
            # x86's fast plan (its float set) against all-int8, both counted on ARM: what
            # decided the arm64 entries of quant/targets.py's *_INT8_SPEED tables
            exported, err = export(model, "int8", work / f"plan-{plan}", formats=PLAN_FORMATS,
                                   extra=("--int8-plan", plan, "--int8-isa", "x86_64"))
            for fmt in PLAN_FORMATS:
                host = exported.get(fmt)
                row: dict[str, Any] = {"model": model, "plan": plan, "format": fmt}
                if host is None or host.get("error"):
                    row["error"] = err or _export_error(host)
                else:
                    art = Artifact.open(Path(host["artifact"]))
                    q = art.manifest.exporter.get("quantization", {})
                    row["float_for_speed"] = sorted(q.get("float_for_speed") or {})
                    row["x86_cosine"] = host["cosine"]
                    _count_on_cpus(row, art, f"{model} plan={plan} {fmt}")
                _upsert(rows, row, ("model", "plan", "format"))
                _save(path, rows)
    return rows


def plan_table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(not measured yet: `python bench/arm_device.py --plan --update-readme`)"
    out = ["| model | format | kept float by x86's `fast` | CPU | x86 fast M instr | "
           "all-int8 M instr | all ÷ fast |", "| --- | --- | --- | --- | ---: | ---: | ---: |"]
    by = {(r["model"], r["plan"], r["format"]): r for r in rows}
    for model in PLAN_MODELS:
        for fmt in PLAN_FORMATS:
            fast, full = by.get((model, "fast", fmt)) or {}, by.get((model, "all", fmt)) or {}
            kinds = ", ".join(fast.get("float_for_speed") or []) or "–"
            for cpu in COST_CPUS:
                a = (fast.get(cpu) or {}).get("instructions_per_inference")
                b = (full.get(cpu) or {}).get("instructions_per_inference")
                ratio = f"{b / a:.2f}" if a and b else "–"
                out.append(f"| {model} | {fmt} | {kinds} | {cpu} | "
                           f"{f'{a / 1e6:.1f}' if a else '–'} | "
                           f"{f'{b / 1e6:.1f}' if b else '–'} | {ratio} |")
    return "\n".join(out)


def _cos(cell: dict[str, Any] | None) -> str:
    if not cell:
        return "–"
    if cell.get("cosine") is None:
        return f"✗ {cell.get('reason', '')[:80]}"
    mark = "✓" if cell["validated"] is True else "✗"
    return f"{mark} {cell['cosine']:.5f}"


def numerics_table(rows: list[dict[str, Any]]) -> str:
    out = ["| model | quant | format | x86 | cortex-a53 | cortex-a76 |",
           "| --- | --- | --- | ---: | ---: | ---: |"]
    for r in sorted(rows, key=lambda r: (r["family"], r["quant"], FORMATS.index(r["format"]))):
        if "error" in r:
            out.append(f"| {r['model']} | {r['quant']} | {r['format']} | ✗ export: "
                       f"{r['error'][:100]} | | |")
            continue
        ok = r.get("x86_validated") is True
        x86 = (f"{'' if ok else '✗ '}{r['x86']:.5f}" if r.get("x86") is not None else "✗")
        out.append(f"| {r['model']} | {r['quant']} | {r['format']} | {x86} | "
                   f"{_cos(r.get('cortex-a53'))} | {_cos(r.get('cortex-a76'))} |")
    done = {(r["model"], r["quant"], r["format"]) for r in rows}
    for fam in FAMILIES.list():
        model = FAMILIES.get(fam).smallest
        missing = [f"{q} {f}" for q in QUANTS for f in FORMATS if (model, q, f) not in done]
        if missing:
            out.append(f"| {model} | not run yet: {', '.join(missing)} | | | | |")
    return "\n".join(out)


def cost_table(rows: list[dict[str, Any]]) -> str:
    out = ["| model | format | CPU | fp32 M instr | int8 M instr | int8 ÷ fp32 |",
           "| --- | --- | --- | ---: | ---: | ---: |"]
    by = {(r["model"], r["reparam"], r["quant"], r["format"]): r for r in rows}
    for model, reparam in COST_MODELS:
        name = model + ("" if reparam else " (no reparam)")
        for fmt in FORMATS:
            for cpu in COST_CPUS:
                cells = []
                for quant in QUANTS:
                    c = (by.get((model, reparam, quant, fmt)) or {}).get(cpu) or {}
                    cells.append(c.get("instructions_per_inference"))
                fp, i8 = cells
                ratio = f"{i8 / fp:.2f}" if fp and i8 else "–"
                out.append(f"| {name} | {fmt} | {cpu} | "
                           f"{f'{fp / 1e6:.1f}' if fp else '–'} | "
                           f"{f'{i8 / 1e6:.1f}' if i8 else '–'} | {ratio} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--numerics", action="store_true")
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--plan", action="store_true",
                    help="int8 plan per ISA: `--int8-plan fast` vs `all` counted on ARM")
    ap.add_argument("--families", default=",".join(FAMILIES.list()))
    ap.add_argument("--quants", default=",".join(QUANTS),
                    help="the numerics matrix's precisions to (re)validate")
    ap.add_argument("--models", default=",".join(dict.fromkeys(m for m, _ in COST_MODELS)),
                    help="the cost table's models to (re)count")
    ap.add_argument("--tables-only", action="store_true",
                    help="render the tables from bench/results/arm_*.json without running")
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgekit-arm-bench"))
    ap.add_argument("--update-readme", action="store_true")
    args = ap.parse_args()
    if not (args.numerics or args.cost or args.plan):
        args.numerics = args.cost = args.plan = True
    if args.tables_only:
        tables = {"arm-numerics": numerics_table(_load(RESULTS / "arm_numerics.json")),
                  "arm-cost": cost_table(_load(RESULTS / "arm_cost.json")),
                  "arm-int8-plan": plan_table(_load(RESULTS / "arm_int8_plan.json"))}
        for section, table in tables.items():
            print(table)
            if args.update_readme:
                replace_section(section, table)
        return
    for cpu in (*NUMERICS_CPUS, *COST_CPUS):
        QemuDevice.from_url(f"qemu://{cpu}").check()
    if args.numerics:
        rows = numerics(args.families.split(","), args.work, tuple(args.quants.split(",")))
        print(numerics_table(rows))
        if args.update_readme:
            replace_section("arm-numerics", numerics_table(rows))
    if args.cost:
        rows = cost(args.work, args.models.split(","))
        print(cost_table(rows))
        if args.update_readme:
            replace_section("arm-cost", cost_table(rows))
    if args.plan:
        rows = plan_study(args.work)
        print(plan_table(rows))
        if args.update_readme:
            replace_section("arm-int8-plan", plan_table(rows))


if __name__ == "__main__":
    main()
