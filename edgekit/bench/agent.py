#!/usr/bin/env python3
"""edgekit device agent: one file, stdlib + numpy + whichever runtime the device has.

edgekit copies this file with the artifacts to the device (or runs it locally), so a number means
the same thing everywhere. It times each artifact in phases (load, first inference, warm-up,
measured runs), keeps every sample, checks the timed session's outputs against golden.npz, and
prints one JSON document between RESULT markers. Progress lines ("EDGEKIT-PARTIAL {...}") stream
the samples of each finished round, so a dropped connection still leaves partial samples.

Usage: agent.py --artifact DIR [--artifact DIR ...] [--threads N] [--warmup N] [--runs N]
                [--min-seconds S] [--warmup-seconds S] [--rounds N] [--watch-stdin]
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import resource
import socket
import sys
import threading
import time

AGENT_VERSION = "1"
RESULT_BEGIN = "EDGEKIT-RESULT-BEGIN"
RESULT_END = "EDGEKIT-RESULT-END"
PARTIAL = "EDGEKIT-PARTIAL"
FORMAT_RUNTIME = {"onnx": "onnxruntime", "tflite": "litert", "executorch": "executorch",
                  "ekr": "ekr"}
# The edgekit runtime's shared library (ekr.h), for .ekr artifacts: the collector points here
# (on the host: the package's _ek_kernels library).
EKR_LIB_ENV = "EDGEKIT_EKR_LIB"
# Pause before switching to another target in an interleaved run: a runtime's worker threads
# keep spinning after a run (ONNX Runtime's intra-op pool does by default), and on a small
# machine they steal the cores from the next target. Measured here, two ORT sessions of
# EfficientFormer-L1 interleaved: medians 15.0 / 14.5 ms (p90 20 / 34) without the pause,
# 10.6 / 14.0 ms (p90 12.0 / 14.8) with 50 ms. After the pause one untimed run wakes the
# target's own threads, so no chunk starts cold.
SWITCH_PAUSE_S = 0.05


# --- runtimes (minimal adapters; the device has one or more of these packages) ----------------

class OrtSession:
    def __init__(self, path, threads):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.input = self.sess.get_inputs()[0].name
        self.version = ort.__version__

    def run(self, x):
        return self.sess.run(None, {self.input: x})


class LiteRtSession:
    def __init__(self, path, threads):
        try:
            import importlib.metadata as md

            from ai_edge_litert.interpreter import Interpreter

            self.version = "ai-edge-litert " + md.version("ai-edge-litert")
        except ImportError:  # an older device image may only have tflite-runtime
            from tflite_runtime.interpreter import Interpreter

            self.version = "tflite-runtime"
        self.interp = Interpreter(model_path=path, num_threads=threads or None)
        self.interp.allocate_tensors()
        detail = self.interp.get_input_details()[0]
        self.inp = detail["index"]
        self.in_dtype = detail["dtype"]
        self.in_q = detail["quantization"]  # (scale, zero_point); scale 0 = not quantized
        self.outs = [(d["index"], d["quantization"]) for d in self.interp.get_output_details()]
        self._fed = (None, None)  # int8-I/O files: the quantized copy of the last input

    def prepare(self, x):
        """The input as the model takes it (integer-I/O models: quantized)."""
        import numpy as np

        if self.in_q[0] and x.dtype != self.in_dtype:
            info = np.iinfo(self.in_dtype)
            q = np.round(x / self.in_q[0]) + self.in_q[1]
            return np.clip(q, info.min, info.max).astype(self.in_dtype)
        return x

    def run(self, x):
        import numpy as np

        if self.in_q[0] and x.dtype != self.in_dtype:
            # an app feeds int8 directly: quantize once per distinct input, outside the loop
            if self._fed[0] is not x:
                info = np.iinfo(self.in_dtype)
                q = np.round(x / self.in_q[0]) + self.in_q[1]
                self._fed = (x, np.clip(q, info.min, info.max).astype(self.in_dtype))
            x = self._fed[1]
        self.interp.set_tensor(self.inp, x)
        self.interp.invoke()
        outs = []
        for index, (scale, zero) in self.outs:
            y = self.interp.get_tensor(index)
            outs.append((y.astype(np.float32) - zero) * scale if scale else y)
        return outs


class ExecuTorchSession:
    def __init__(self, path, threads):
        import importlib.metadata as md

        import torch
        from executorch.runtime import Runtime

        if threads:
            torch.set_num_threads(threads)
            # the XNNPACK delegate has its own pool, sized to the cores by default (older
            # runtimes lack the call: torch's setting is all there is)
            with contextlib.suppress(ImportError):
                from executorch.extension.pybindings.portable_lib import (
                    _unsafe_reset_threadpool,
                )

                _unsafe_reset_threadpool(threads)
        self.torch = torch
        self.method = Runtime.get().load_program(path).load_method("forward")
        self.version = "executorch " + md.version("executorch")

    def run(self, x):
        return [o.numpy() for o in self.method.execute([self.torch.from_numpy(x)])]


class EkrSession:
    """edgekit's native runtime through ctypes (ekr.h): the library at $EDGEKIT_EKR_LIB."""

    def __init__(self, path, threads):
        import ctypes

        import numpy as np

        lib_path = os.environ.get(EKR_LIB_ENV)
        if not lib_path:
            raise SystemExit(f"{EKR_LIB_ENV} is not set: the edgekit runtime library is not "
                             "on this device")
        lib = ctypes.CDLL(lib_path)
        vp, sz = ctypes.c_void_p, ctypes.c_size_t
        lib.ekr_load.argtypes = [vp, sz, ctypes.POINTER(vp), ctypes.c_char_p, sz]
        lib.ekr_run.argtypes = [vp, vp, sz, vp, sz, ctypes.c_char_p, sz]
        lib.ekr_input_shape.argtypes = lib.ekr_output_shape.argtypes = [
            vp, ctypes.POINTER(ctypes.c_int32)]
        lib.ek_build_info.restype = ctypes.c_char_p
        with open(path, "rb") as f:
            data = f.read()
        self._err = ctypes.create_string_buffer(512)
        self._model = vp()
        if lib.ekr_load(data, len(data), ctypes.byref(self._model), self._err, 512):
            raise SystemExit(f"the edgekit runtime rejects {path}: {self._err.value.decode()}")
        lib.ekr_set_threads.argtypes = [vp, ctypes.c_int, ctypes.c_char_p, sz]
        if threads and lib.ekr_set_threads(self._model, int(threads), self._err, 512):
            raise SystemExit(f"--threads {threads}: {self._err.value.decode()}")

        def shape(fn):
            dims = (ctypes.c_int32 * 6)()
            return tuple(dims[:fn(self._model, dims)])

        self._lib, self._out_shape = lib, shape(lib.ekr_output_shape)
        self._np = np
        self.version = "edgekit runtime (" + lib.ek_build_info().decode() + ")"

    def run(self, x):
        np = self._np
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.empty(self._out_shape, dtype=np.float32)
        if self._lib.ekr_run(self._model, x.ctypes.data, x.size, y.ctypes.data, y.size,
                             self._err, 512):
            raise SystemExit(f"edgekit runtime: {self._err.value.decode()}")
        return [y]


SESSIONS = {"onnxruntime": OrtSession, "litert": LiteRtSession, "executorch": ExecuTorchSession,
            "ekr": EkrSession}


# --- measurement -------------------------------------------------------------------------------

def percentile(sorted_xs, q):
    if not sorted_xs:
        return float("nan")
    k = (len(sorted_xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (k - lo)


def stats(samples):
    xs = sorted(samples)
    n = len(xs)
    mean = sum(xs) / n
    std = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5 if n > 1 else 0.0
    return {"median_ms": percentile(xs, 50), "p90_ms": percentile(xs, 90),
            "p99_ms": percentile(xs, 99), "mean_ms": mean, "std_ms": std,
            "cv": std / mean if mean > 0 else float("nan"), "min_ms": xs[0], "max_ms": xs[-1],
            "iterations": n}


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def fingerprint():
    cpu = None
    for line in (read("/proc/cpuinfo", "") or "").splitlines():
        key = line.split(":")[0].strip().lower()
        if key in ("model name", "hardware", "cpu model", "processor") and ":" in line:
            value = line.split(":", 1)[1].strip()
            if value and not value.isdigit():
                cpu = value
                break
    temps = []
    base = "/sys/class/thermal"
    if os.path.isdir(base):
        for zone in sorted(os.listdir(base)):
            t = read(os.path.join(base, zone, "temp"))
            if t and t.lstrip("-").isdigit():
                temps.append({"zone": read(os.path.join(base, zone, "type"), zone),
                              "celsius": int(t) / 1000.0})
    return {
        "device": socket.gethostname(), "cpu_model": cpu or platform.processor() or None,
        "cores": os.cpu_count(), "machine": platform.machine(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_khz": read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq"),
        "temperatures": temps, "boot_id": read("/proc/sys/kernel/random/boot_id"),
        "affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "agent_version": AGENT_VERSION,
    }


def peak_gflops(cache_dir, seconds=0.5):
    """FLOP/s ceiling of this device: best of a short fp32 matmul probe (numpy BLAS, all cores),
    kept as the running maximum per device, since a probe on a busy device only underestimates."""
    import numpy as np

    key = hashlib.sha256(json.dumps([platform.node(), platform.machine(), os.cpu_count(),
                                     np.__version__]).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"peak-{key}.json")
    cached = 0.0
    try:
        cached = float(json.loads(read(path) or "{}").get("gflops", 0.0))
    except (ValueError, TypeError):
        cached = 0.0  # a corrupt cache entry is ignored: the probe below re-measures
    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    b = a.T.copy()
    a @ b
    best = 0.0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    best = max(best, cached)
    try:
        os.makedirs(cache_dir, exist_ok=True)
        with open(path, "w") as f:
            json.dump({"gflops": best, "n": n}, f)
    except OSError:
        best = float(best)  # read-only cache dir: the probe result is still used, not kept
    return best


def load_golden(art_dir):
    """(inputs, outputs, judged): judged marks the golden inputs the sanity check covers, which
    for calibrated modes leaves out the noise inputs, as edgekit's validation does (validate.py
    CALIBRATED_MODES)."""
    import numpy as np

    with open(os.path.join(art_dir, "manifest.json")) as f:
        quant = json.load(f).get("quant")
    with np.load(os.path.join(art_dir, "golden.npz"), allow_pickle=False) as data:
        ins = [data[k] for k in data.files if k.startswith("in.")]
        outs = [data[k] for k in data.files if k.startswith("out.")]
        kinds = data["kind"] if "kind" in data.files else None
    judged = np.ones(len(ins[0]), dtype=bool)
    if quant in CALIBRATED_MODES and kinds is not None and kinds.shape == judged.shape:
        judged = kinds != "noise"
        if not judged.any():
            judged[:] = True
    return ins[0], outs[0], judged


def check_outputs(session, x_all, ref_all, batch, min_cosine, judged=None):
    import numpy as np

    worst = 1.0
    for start in range(0, len(x_all), batch):
        chunk = np.ascontiguousarray(x_all[start:start + batch])
        got = np.asarray(session.run(chunk)[0], dtype=np.float64).reshape(len(chunk), -1)
        ref = np.asarray(ref_all[start:start + batch], dtype=np.float64).reshape(len(chunk), -1)
        if not np.isfinite(got).all():
            return False, float("nan")
        cos = (got * ref).sum(1) / np.maximum(
            np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1), 1e-300)
        if judged is not None:
            cos = cos[judged[start:start + batch]]
        if cos.size:
            worst = min(worst, float(cos.min()))
    return worst >= min_cosine, worst


def pick_batch(manifest, requested):
    """The batch to run: the artifact's static batch, or (a dynamic batch, input dim -1) the
    requested size up to the exported bound (default 1)."""
    static = int(manifest["inputs"][0]["shape"][0])
    if static > 0:
        if requested and requested != static:
            raise SystemExit(f"the artifact's batch is static ({static}), not {requested}: "
                             "re-export with --batch N or --dynamic-batch")
        return static
    bound = ((manifest.get("exporter") or {}).get("dynamic_batch") or {}).get("max")
    batch = requested or 1
    if bound and batch > int(bound):
        raise SystemExit(f"batch {batch} exceeds the artifact's dynamic-batch bound {bound}: "
                         "re-export with --max-batch N")
    return batch


def model_file(manifest, requested):
    """The file to load: the manifest's model file, or one of its listed companion files
    (model.ort beside model.onnx) — a bare name from the manifest, never a path."""
    if requested is None or requested == manifest["file"]:
        return manifest["file"]
    listed = [c.get("file") for c in (manifest.get("exporter") or {}).get("companions", [])]
    if requested not in listed or os.path.basename(requested) != requested:
        raise SystemExit(f"{requested} is not a companion file of this artifact "
                         f"(listed: {', '.join(map(str, listed)) or 'none'})")
    return requested


class Target:
    def __init__(self, art_dir, threads, batch=None, file=None):
        with open(os.path.join(art_dir, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.dir = art_dir
        fmt = self.manifest["format"]
        if fmt not in FORMAT_RUNTIME:
            raise SystemExit(f"format {fmt} cannot be benchmarked by the agent")
        self.runtime = FORMAT_RUNTIME[fmt]
        path = os.path.join(art_dir, model_file(self.manifest, file))
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        self.sha256 = h.hexdigest()
        self.x_all, self.ref_all, self.judged = load_golden(art_dir)
        self.batch = pick_batch(self.manifest, batch)
        # the timed batch: golden inputs, cycled when the batch is larger than the set
        self.x = self.x_all[[i % len(self.x_all) for i in range(self.batch)]].copy()
        t = time.perf_counter()
        self.session = SESSIONS[self.runtime](path, threads)
        self.init_ms = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        self.session.run(self.x)
        self.first_ms = (time.perf_counter() - t) * 1e3
        self.warmup_ms = []
        self.samples = []

    def timed(self, n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            self.session.run(self.x)
            out.append((time.perf_counter() - t) * 1e3)
        return out


# Quantization modes with calibrated ranges: their noise golden inputs are not judged.
CALIBRATED_MODES = ("w8a16", "int8", "int-only")

# Instruction-count markers (edgekit/qemu/insncount.c): lseek on fd -1 fails with EBADF and
# changes nothing, but the counting plugin sees the call and counts only between the two.
COUNT_MARK_START = 0x6564676B69740001
COUNT_MARK_STOP = 0x6564676B69740002


def count_mark(offset):
    with contextlib.suppress(OSError):  # EBADF, by design: only the plugin acts on it
        os.lseek(-1, offset, os.SEEK_SET)


def write_outputs(art_dir, threads, out_path, inputs_path=None, batch=None, file=None):
    """The artifact's outputs on its golden inputs (or a given batch), batch by batch, as
    out.K arrays stacked over the inputs: what `edgekit validate|run --device` compare."""
    import numpy as np

    tg = Target(art_dir, threads, batch, file)
    x_all = tg.x_all if inputs_path is None else np.load(inputs_path, allow_pickle=False)
    want = tuple(tg.manifest["inputs"][0]["shape"][1:])
    if tuple(x_all.shape[1:]) != want:
        raise SystemExit(f"input shape {tuple(x_all.shape)} does not fit the artifact's "
                         f"(N, {', '.join(map(str, want))})")
    outs = []
    for start in range(0, len(x_all), tg.batch):
        chunk = np.ascontiguousarray(x_all[start:start + tg.batch], dtype=np.float32)
        if len(chunk) < tg.batch:  # pad the last batch; the padding's outputs are dropped
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], tg.batch - len(chunk), 0)])
        got = [np.asarray(o) for o in tg.session.run(chunk)]
        outs.append([o[: min(tg.batch, len(x_all) - start)] for o in got])
    arrays = {f"out.{k}": np.concatenate([o[k] for o in outs]) for k in range(len(outs[0]))}
    tmp = out_path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, out_path)
    print(json.dumps({"runtime": tg.runtime, "runtime_version": tg.session.version,
                      "inputs": int(len(x_all)), "machine": platform.machine()}))


def profile(art_dir, threads, runs, warmup, batch=None):
    """--profile: the runtime's per-op profile (agent_profile.py, shipped beside this file)."""
    import agent_profile  # noqa: PLC0415 - device-side, next to agent.py

    tg = Target(art_dir, threads, batch)  # includes one warm-up run
    profiler = agent_profile.PROFILERS.get(tg.runtime)
    if profiler is None:
        raise SystemExit(f"no per-op profiler for {tg.runtime} in this agent (profiles: "
                         f"{', '.join(sorted(agent_profile.PROFILERS))})")
    tg.timed(warmup)
    end_to_end = tg.timed(runs)
    x = tg.session.prepare(tg.x) if hasattr(tg.session, "prepare") else tg.x
    path = os.path.join(art_dir, model_file(tg.manifest, None))
    result = profiler(path, threads, x, runs, warmup)
    print(json.dumps({"runtime": tg.runtime, "runtime_version": tg.session.version,
                      "machine": platform.machine(), "threads": threads or None,
                      "batch": tg.batch, "runs": runs, "artifact_sha256": tg.sha256,
                      "end_to_end_ms": end_to_end, **result}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--artifact", action="append", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--warmup-seconds", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved rounds (A B A B ...)")
    ap.add_argument("--min-cosine", type=float, default=0.99)
    ap.add_argument("--cache-dir", default=os.path.expanduser("~/.cache/edgekit"))
    ap.add_argument("--watch-stdin", action="store_true",
                    help="exit when stdin closes (the ssh/adb connection dropped)")
    ap.add_argument("--count-runs", type=int, default=None,
                    help="instruction counting (under qemu with a counter plugin): load the "
                         "one artifact, run once to warm up, then N more times between two "
                         "count markers, and exit")
    ap.add_argument("--outputs", default=None,
                    help="write the outputs (out.0, out.1, ...) of the one artifact on its "
                         "golden inputs, or on --inputs, to this .npz and exit")
    ap.add_argument("--inputs", default=None, help="with --outputs: a .npy batch to run")
    ap.add_argument("--model-file", default=None,
                    help="with --outputs: run a companion file the manifest lists (model.ort)")
    ap.add_argument("--profile", type=int, default=None, metavar="RUNS",
                    help="per-op profile of the one artifact (agent_profile.py): RUNS "
                         "unprofiled runs for the end-to-end median, then RUNS profiled "
                         "runs; print one JSON line and exit")
    ap.add_argument("--batch", type=int, default=None,
                    help="images per run: a dynamic-batch artifact's size (default 1), or its "
                         "static batch")
    args = ap.parse_args()
    if args.outputs is not None:
        write_outputs(args.artifact[0], args.threads, args.outputs, args.inputs, args.batch,
                      args.model_file)
        return
    if args.profile is not None:
        profile(args.artifact[0], args.threads, args.profile, args.warmup, args.batch)
        return
    if args.count_runs is not None:
        tg = Target(args.artifact[0], args.threads, args.batch)  # includes one warm-up run
        count_mark(COUNT_MARK_START)
        tg.timed(args.count_runs)
        count_mark(COUNT_MARK_STOP)
        print(json.dumps({"runtime": tg.runtime, "runtime_version": tg.session.version,
                          "runs": args.count_runs}))
        return
    if args.watch_stdin:
        def watch():
            while sys.stdin.buffer.read(1024):
                continue  # drain; EOF means the ssh/adb connection is gone
            os._exit(75)

        threading.Thread(target=watch, daemon=True).start()

    started = time.time()
    fp = fingerprint()
    targets = [Target(d, args.threads, args.batch) for d in args.artifact]
    # Warm-up: at least N runs and at least S seconds each.
    pause = SWITCH_PAUSE_S if len(targets) > 1 else 0.0
    for tg in targets:
        time.sleep(pause)
        end = time.perf_counter() + args.warmup_seconds
        while len(tg.warmup_ms) < args.warmup or time.perf_counter() < end:
            tg.warmup_ms.extend(tg.timed(1))
    # Measured: interleaved rounds until every target has >= runs samples and >= min-seconds.
    per_round = max(1, -(-args.runs // args.rounds))
    t0 = time.perf_counter()
    rnd = 0
    while rnd < args.rounds or time.perf_counter() - t0 < args.min_seconds * len(targets):
        order = targets if rnd % 2 == 0 else targets[::-1]
        for tg in order:
            if pause:
                time.sleep(pause)
                tg.timed(1)  # untimed: wake this target's worker threads
            chunk = tg.timed(per_round)
            tg.samples.extend(chunk)
            print(f"{PARTIAL} " + json.dumps({"artifact": tg.dir, "round": rnd,
                                              "samples_ms": chunk}), flush=True)
        rnd += 1
    wall = time.perf_counter() - t0
    gflops = peak_gflops(args.cache_dir)
    results = []
    for tg in targets:
        ok, cosine = check_outputs(tg.session, tg.x_all, tg.ref_all, tg.batch, args.min_cosine,
                                   tg.judged)
        s = stats(tg.samples)
        flops = tg.manifest.get("flops")  # counted at the export batch: scale to this run's
        if flops:
            flops = flops * tg.batch / ((tg.manifest.get("exporter") or {}).get("batch") or 1)
        floor_ms = flops / (gflops * 1e9) * 1e3 if flops and gflops else None
        plausible = floor_ms is None or s["min_ms"] >= floor_ms
        stable = s["cv"] <= 0.10 and s["max_ms"] / max(s["min_ms"], 1e-9) <= 3
        results.append({
            "artifact": tg.dir, "model": tg.manifest.get("model"),
            "format": tg.manifest["format"], "quant": tg.manifest.get("quant"),
            "runtime": tg.runtime, "runtime_version": tg.session.version,
            "threads": args.threads or None, **s, "samples_ms": tg.samples,
            "batch": tg.batch,
            "throughput_ips": tg.batch * 1e3 / s["median_ms"] if s.get("median_ms") else None,
            "init_ms": tg.init_ms, "first_ms": tg.first_ms, "warmup_ms": tg.warmup_ms,
            "validated": ok, "validation_cosine": cosine,
            "stable": stable, "plausible": plausible,
            "plausibility": {"flops": flops, "peak_gflops": gflops, "floor_ms": floor_ms,
                             "reason": "" if plausible else
                             f"min {s['min_ms']:.3f} ms < {floor_ms:.3f} ms = FLOPs / measured "
                             "peak: a measurement bug (skipped work or cached result)"},
            "size_bytes": tg.manifest.get("size_bytes"),
            "manifest_validation": tg.manifest.get("validation"),
            "input_shape": tg.manifest["inputs"][0]["shape"],
            "input_dtype": tg.manifest["inputs"][0]["dtype"],
            "fingerprint": dict(fp, artifact_sha256=tg.sha256),
            "config": {"warmup": args.warmup, "warmup_seconds": args.warmup_seconds,
                       "runs": args.runs, "min_seconds": args.min_seconds,
                       "rounds": rnd, "interleaved": len(targets) > 1,
                       "switch_pause_s": pause},
        })
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    boot_end = read("/proc/sys/kernel/random/boot_id")
    for r in results:
        r["peak_rss_mb"] = peak_rss_mb
        r["wall_s"] = wall
        r["started"] = started
        r["rebooted"] = bool(fp["boot_id"] and boot_end and boot_end != fp["boot_id"])
    print(RESULT_BEGIN)
    print(json.dumps(results))
    print(RESULT_END, flush=True)


if __name__ == "__main__":
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
        if not isinstance(exc.code, int) and exc.code:
            print(exc.code, file=sys.stderr)
    except BaseException:  # noqa: BLE001 - report, then exit without waiting for threads
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the stdin watchdog thread must not block interpreter shutdown
