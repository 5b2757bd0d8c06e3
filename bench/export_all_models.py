"""Export and validate every model of every supported family to ONNX (fp32, live weights).

Each model runs `edgekit export` in its own process with a time limit, so one failure or memory
blow-up does not stop the sweep. Writes models/status.json (read by `edgekit models`) and the
family matrix section of README.md.

    python bench/export_all_models.py [--timeout 900] [--only 'levit*'] [--update-readme]
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgekit.models.families import FAMILIES, family_of, supported_models
from edgekit.models.status import STATUS_FILE
from readme_section import replace_section


def run_one(name: str, out: Path, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "edgekit.cli", "export", name, "--to", "onnx", "--out", str(out),
           "--json", "--allow-mismatch"]
    started = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"model": name, "onnx": "timeout", "note": f"did not finish in {timeout:.0f} s"}
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"model": name, "onnx": "error", "note": last[:300], "wall_s": round(wall, 1)}
    row = json.loads(proc.stdout)
    return {"model": name, "onnx": "validated" if row["validated"] else "mismatch",
            "cosine": row["cosine"], "max_rel": row["max_rel"], "size_mb": row["size_mb"],
            "export_s": row["export_s"], "wall_s": round(wall, 1), "note": row["reason"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--only", default="*")
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true",
                    help="rewrite the README table from models/status.json, export nothing")
    args = ap.parse_args()
    names = [] if args.readme_only else [n for n in supported_models()
                                         if fnmatch.fnmatch(n, args.only)]
    previous = json.loads(STATUS_FILE.read_text())["models"] if STATUS_FILE.exists() else []
    rows = {r["model"]: r for r in previous}
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names, 1):
            row = run_one(name, Path(tmp), args.timeout)
            fam = family_of(name)
            row["family"] = fam.name if fam else None
            rows[name] = row
            print(f"[{i}/{len(names)}] {name}: {row['onnx']} {row.get('cosine', '')} "
                  f"{row.get('wall_s', '')}s {row.get('note', '')}", flush=True)
            for p in Path(tmp).iterdir():  # keep the disk clean between models
                subprocess.run(["rm", "-rf", str(p)], check=False)
            STATUS_FILE.write_text(json.dumps(
                {"generated": dt.date.today().isoformat(), "command": "bench/export_all_models.py",
                 "models": sorted(rows.values(), key=lambda r: r["model"])}, indent=1) + "\n")
    if args.update_readme or args.readme_only:
        ordered = sorted(rows.values(), key=lambda r: (r.get("family") or "", r["model"]))
        lines = ["| family | model | ONNX fp32 | cosine vs timm | size MB | export+validate s |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for r in ordered:
            cos = f"{r['cosine']:.7f}" if isinstance(r.get("cosine"), float) else ""
            state = r["onnx"] if r["onnx"] == "validated" else f"**{r['onnx']}**: {r.get('note')}"
            lines.append(f"| {r.get('family')} | {r['model']} | {state} | {cos} | "
                         f"{r.get('size_mb', '')} | {r.get('export_s', '')} |")
        ok = sum(r["onnx"] == "validated" for r in ordered)
        lines.append("")
        lines.append(f"{ok}/{len(ordered)} models validated "
                     f"(generated {dt.date.today().isoformat()} by `bench/export_all_models.py`; "
                     f"families: {', '.join(FAMILIES.list())}).")
        replace_section("family-matrix", "\n".join(lines))


if __name__ == "__main__":
    main()
