"""The edgekit runtime (`.ekr`, `--quant int-only`): bit-exactness, ARM cost, host latency and
memory, per model. Four phases, each writing its fields into bench/results/ekr_runtime.json:

exact    runtime output == numpy int64 reference == onnxruntime on the integer ONNX, on 50
         inputs (photo views for the full-size live-weight models, held-out test images for
         the Fashion-MNIST configs): on the host (the Python binding) and under qemu with the
         static aarch64 runner at every kernel level (nosimd/cortex-a53 autovec, cortex-a53
         NEON, cortex-a76 dotprod, max i8mm).
cost     guest instructions per inference, 1 thread, cortex-a76 and cortex-a53 (the emulated
         device's counter, edgekit/qemu): the runtime vs LiteRT int8 (XNNPACK) vs LiteRT fp32,
         all counted in this run.
latency  host, interleaved in one `edgekit bench --compare` run: the runtime vs ORT on the
         integer ONNX vs the int8 and fp32 ONNX / TFLite artifacts of the same model.
memory   the arena the file plans vs its lower bound (the largest set of simultaneously live
         tensors), and the host runner's peak RSS.
profile  where the runtime's instructions go on cortex-a76: guest instructions per inference
         of each op type (the runner marks only that type's ops).

    python bench/ekr_runtime.py [--phases exact,cost,latency,memory] [--models ...]
                                [--threads 2] [--work DIR] [--update-readme | --readme-only]

Exports are cached in --work (default /tmp/edgekit-ekr-bench) between phases and runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from int_only import integer_graph
from readme_section import replace_section

from edgekit.artifact import Artifact
from edgekit.bench.collectors import BenchConfig
from edgekit.bench.run import run_bench
from edgekit.intonly.graph import run_reference
from edgekit.kernels.ekr import EkrModel
from edgekit.pipeline import ExportRequest, export_model
from edgekit.qemu import QemuDevice
from edgekit.qemu.run import count_instructions, count_op_types

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results") / "ekr_runtime.json"
MODELS = ("levit_128s", "efficientformer_l1", "fmnist_levit", "fmnist_efficientformer",
          "fmnist_mobilevit")
PHASES = ("exact", "cost", "latency", "memory", "profile")
N_INPUTS = 50
# (runner build, qemu CPU, the GEMM path it must select)
LEVELS = (("nosimd", "cortex-a53", "autovec"), ("a64", "cortex-a53", "neon"),
          ("a64", "cortex-a76", "neondot"), ("a64", "max", "i8mm"))
COST_CPUS = ("cortex-a76", "cortex-a53")
# artifact key -> (quant, format)
ARTIFACTS = {"ekr": ("int-only", "ekr"), "ort int-only": ("int-only", "onnx"),
             "ort int8": ("int8", "onnx"), "litert int8": ("int8", "tflite"),
             "ort fp32": ("fp32", "onnx"), "litert fp32": ("fp32", "tflite")}


def exported(model: str, work: Path) -> dict[str, Artifact]:
    """The model's artifacts, exported once into `work` (one integer graph for ekr + onnx)."""
    made: dict[str, Artifact] = {}
    for quant, formats in (("int-only", ("onnx", "ekr")), ("int8", ("onnx", "tflite")),
                           ("fp32", ("onnx", "tflite"))):
        out = work / model / quant
        paths = {f: out / f"{model}.{quant}.{f}" for f in formats}
        if not all((p / "manifest.json").is_file() for p in paths.values()):
            shutil.rmtree(out, ignore_errors=True)
            export_model(ExportRequest(model=model, formats=formats, quant=quant, out=out))
            print(f"{model} {quant}: exported {', '.join(formats)}", flush=True)
        for key, (q, f) in ARTIFACTS.items():
            if q == quant and f in formats:
                made[key] = Artifact.open(paths[f])
    return made


def phase_exact(model: str, made: dict[str, Artifact], runners: Path) -> dict[str, Any]:
    import onnxruntime as ort

    graph, x, _ = integer_graph(model, made["ort int-only"], N_INPUTS)
    golden_x = next(iter(made["ekr"].load_golden()[0].values()))
    for name, want in made["ekr"].golden_exact().items():
        got = np.concatenate([run_reference(graph, golden_x[i:i + 1])
                              for i in range(len(golden_x))])
        if not np.array_equal(got, want.reshape(got.shape)):
            raise SystemExit(f"{model}: the rebuilt integer graph is not the exported one "
                             f"({name} differs from golden exact)")
    reference = np.concatenate([run_reference(graph, x[i:i + 1]) for i in range(len(x))])
    sess = ort.InferenceSession(str(made["ort int-only"].model_path),
                                providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    ort_out = np.concatenate([sess.run(None, {name: x[i:i + 1]})[0] for i in range(len(x))])
    rt = EkrModel.from_file(made["ekr"].model_path)
    host = np.concatenate([rt.run(x[i:i + 1]) for i in range(len(x))])

    def equal(a: np.ndarray) -> int:
        a = a.reshape(reference.shape)
        return int(sum(np.array_equal(a[i], reference[i]) for i in range(len(x))))

    row: dict[str, Any] = {"inputs": len(x), "ort": equal(ort_out), "host": equal(host),
                           "qemu": {}}
    with tempfile.TemporaryDirectory(prefix="edgekit-ekr-exact-") as tmp:
        src, dst = Path(tmp) / "x.f32", Path(tmp) / "y.f32"
        x.astype("<f4").tofile(src)
        for build, cpu, gemm in LEVELS:
            dev = QemuDevice.from_url(f"qemu://{cpu}")
            cmd = dev.command(str(made["ekr"].model_path), "--inputs", str(src), "--outputs",
                              str(dst), binary=runners / build / "ekr_runner")
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                row["qemu"][f"{cpu}/{gemm}"] = {"error": proc.stderr.strip()[-300:]}
                continue
            info = json.loads(proc.stdout.strip().splitlines()[-1])
            path = dict(p.split("=") for p in info["kernel_paths"].split())["s8_gemm_requant"]
            got = np.fromfile(dst, dtype="<f4")
            row["qemu"][f"{cpu}/{gemm}"] = {"equal": equal(got), "gemm": path}
    print(f"{model}: exact {row}", flush=True)
    return row


def phase_cost(model: str, made: dict[str, Artifact]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key in ("ekr", "litert int8", "litert fp32"):
        row[key] = {}
        for cpu in COST_CPUS:
            try:
                got = count_instructions(QemuDevice.from_url(f"qemu://{cpu}"), made[key])
                row[key][cpu] = got["instructions_per_inference"]
            except Exception as exc:  # noqa: BLE001 - a red cell, with its error
                row[key][cpu] = f"{type(exc).__name__}: {exc}"[:300]
            print(f"{model} {key} {cpu}: {row[key][cpu]}", flush=True)
    return row


def phase_latency(model: str, made: dict[str, Artifact], cfg: BenchConfig) -> dict[str, Any]:
    keys = list(ARTIFACTS)
    results = run_bench([made[k].path for k in keys], cfg=cfg, compare=True)
    row = {k: {"median_ms": r["median_ms"], "stable": r.get("stable")}
           for k, r in zip(keys, results, strict=True)}
    print(f"{model}: latency {row}", flush=True)
    return row


def phase_memory(model: str, made: dict[str, Artifact], runners: Path) -> dict[str, Any]:
    proc = subprocess.run([str(runners / "host" / "ekr_runner"), str(made["ekr"].model_path),
                           "--runs", "3"], capture_output=True, text=True, timeout=600,
                          check=True)
    info = json.loads(proc.stdout)
    row = {"arena_bytes": info["arena_bytes"], "arena_lower_bound": info["arena_lower_bound"],
           "peak_rss_kb": info["peak_rss_kb"],
           "file_bytes": made["ekr"].model_path.stat().st_size}
    print(f"{model}: memory {row}", flush=True)
    return row


def _runners(into: Path) -> Path:
    """The runners of every build, copied (a rebuild during the run changes nothing here)."""
    subprocess.run(["make", "-C", str(ROOT / "kernels_arm"), "-s", "runner"], check=True,
                   capture_output=True)
    for build in ("host", "a64", "nosimd"):
        (into / build).mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / "kernels_arm" / "build" / build / "ekr_runner", into / build)
    return into


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgekit-ekr-bench"))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--readme-only", action="store_true")
    args = ap.parse_args()
    payload = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"rows": {}}
    if not args.readme_only:
        cfg = BenchConfig(threads=args.threads, runs=30, min_seconds=0.5, rounds=args.rounds,
                          retries=0)
        with tempfile.TemporaryDirectory(prefix="edgekit-ekr-runners-") as tmp:
            runners = _runners(Path(tmp))
            for model in args.models.split(","):
                made = exported(model, args.work)
                row = payload["rows"].setdefault(model, {})
                for phase in args.phases.split(","):
                    if phase == "exact":
                        row["exact"] = phase_exact(model, made, runners)
                    elif phase == "cost":
                        row["cost"] = phase_cost(model, made)
                    elif phase == "latency":
                        row["latency"] = phase_latency(model, made, cfg)
                        payload["threads"] = args.threads
                    elif phase == "profile":
                        row["profile"] = count_op_types(QemuDevice.from_url("qemu://cortex-a76"),
                                                        made["ekr"])
                        print(f"{model}: profile {row['profile']}", flush=True)
                    elif phase == "memory":
                        row["memory"] = phase_memory(model, made, runners)
                    else:
                        raise SystemExit(f"unknown phase {phase!r} (one of {PHASES})")
                    RESULTS.write_text(json.dumps(payload, indent=1) + "\n")
    if args.update_readme or args.readme_only:
        render(payload)


def _m(v: Any) -> str:
    return f"{v / 1e6:.1f} M" if isinstance(v, (int, float)) else "✗"


def render(payload: dict[str, Any]) -> None:
    rows = {m: payload["rows"][m] for m in MODELS if m in payload["rows"]}
    exact = ["Outputs equal in every bit to the numpy int64 reference of the same integer "
             f"graph, on {N_INPUTS} inputs per model (photo views for the full-size "
             "live-weight models, held-out test images for the Fashion-MNIST configs). "
             "Host = the Python binding on x86; qemu = the static aarch64 runner at each "
             "kernel level (the GEMM path it selected in brackets).", "",
             "| model | ORT integer ONNX | runtime, host | " + " | ".join(
                 f"qemu {cpu} ({gemm})" for _, cpu, gemm in LEVELS) + " |",
             "| --- | ---: | ---: |" + " ---: |" * len(LEVELS)]
    for m, r in rows.items():
        if "exact" not in r:
            continue
        e, n = r["exact"], r["exact"]["inputs"]
        cells = []
        for _, cpu, gemm in LEVELS:
            q = e["qemu"].get(f"{cpu}/{gemm}", {})
            cells.append(f"{q['equal']}/{n}" + ("" if q.get("gemm") == gemm else
                                               f" (ran {q.get('gemm')})")
                         if "equal" in q else f"✗ {q.get('error', 'not run')[:60]}")
        exact.append(f"| {m} | {e['ort']}/{n} | {e['host']}/{n} | " + " | ".join(cells) + " |")
    replace_section("ekr-exact", "\n".join(exact))

    cost = ["Guest instructions per inference, batch 1, 1 thread, counted by the emulated "
            "device's plugin (edgekit/qemu/insncount.c) between markers after a warm-up; "
            "all in one run. ratio = runtime / LiteRT int8 (below 1: fewer instructions).", "",
            "| model | CPU | edgekit runtime | LiteRT int8 (XNNPACK) | LiteRT fp32 | ratio |",
            "| --- | --- | ---: | ---: | ---: | ---: |"]
    for m, r in rows.items():
        for cpu in COST_CPUS:
            if "cost" not in r:
                continue
            c = r["cost"]
            e, i8, f32 = (c[k].get(cpu) for k in ("ekr", "litert int8", "litert fp32"))
            ratio = (f"{e / i8:.2f}×" if isinstance(e, (int, float))
                     and isinstance(i8, (int, float)) else "—")
            cost.append(f"| {m} | {cpu} | {_m(e)} | {_m(i8)} | {_m(f32)} | {ratio} |")
    replace_section("ekr-cost", "\n".join(cost))

    lat = [f"Host (this 2-core x86 machine), batch 1, {payload.get('threads', '?')} threads, "
           "median ms; all six artifacts of a model timed interleaved in one `edgekit bench "
           "--compare` run. speed-up = ORT integer-only / runtime.", "",
           "| model | edgekit runtime | ORT int-only | speed-up | ORT int8 | LiteRT int8 | "
           "ORT fp32 | LiteRT fp32 |", "| --- |" + " ---: |" * 7]
    for m, r in rows.items():
        if "latency" not in r:
            continue
        ms = {k: v["median_ms"] for k, v in r["latency"].items()}
        lat.append(f"| {m} | {ms['ekr']:.2f} | {ms['ort int-only']:.2f} | "
                   f"{ms['ort int-only'] / ms['ekr']:.1f}× | {ms['ort int8']:.2f} | "
                   f"{ms['litert int8']:.2f} | {ms['ort fp32']:.2f} | {ms['litert fp32']:.2f} |")
    replace_section("ekr-latency", "\n".join(lat))

    mem = ["The arena the file plans (liveness-based reuse, computed at export) vs its lower "
           "bound, the largest set of simultaneously live tensors; peak RSS of the host runner "
           "(file copy, arena, repacked weights, the binary).", "",
           "| model | arena | lower bound | arena / bound | .ekr file | runner peak RSS |",
           "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for m, r in rows.items():
        if "memory" not in r:
            continue
        mm = r["memory"]
        mem.append(f"| {m} | {mm['arena_bytes'] / 2**20:.2f} MiB | "
                   f"{mm['arena_lower_bound'] / 2**20:.2f} MiB | "
                   f"{mm['arena_bytes'] / mm['arena_lower_bound']:.2f} | "
                   f"{mm['file_bytes'] / 2**20:.2f} MiB | {mm['peak_rss_kb'] / 1024:.1f} MiB |")
    replace_section("ekr-memory", "\n".join(mem))

    profiled = {m: r["profile"] for m, r in rows.items() if "profile" in r}
    types = sorted({t for p in profiled.values() for t in p},
                   key=lambda t: -max(p.get(t, 0) for p in profiled.values()))
    prof = ["Guest instructions per inference on cortex-a76 spent in each op type of the "
            "runtime (millions; the runner marks only that type's ops inside the counted "
            "runs). A convolution includes its NCHW↔NHWC transposes and im2col.", "",
            "| op type | " + " | ".join(profiled) + " |", "| --- |" + " ---: |" * len(profiled)]
    for t in types:
        if all(p.get(t, 0) < 5e4 for p in profiled.values()):
            continue
        prof.append(f"| {t} | " + " | ".join(f"{p[t] / 1e6:.2f}" if t in p else "—"
                                              for p in profiled.values()) + " |")
    replace_section("ekr-profile", "\n".join(prof))


if __name__ == "__main__":
    main()
