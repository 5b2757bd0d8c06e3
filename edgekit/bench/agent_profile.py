"""Per-op profiles on the device: the device agent's `--profile N` mode (stdlib + numpy + the
runtime, shipped beside agent.py). Each runtime's own profiler, raw samples per op per run;
the host (edgekit/layers/profile.py) maps ops to modules and aggregates.

ONNX Runtime  SessionOptions.enable_profiling: each executed node's kernel time, split into runs
              by the profile's `model_run` events, plus the optimized graph the session ran
              (weights left in an external file, not sent), so the host can follow ORT's
              fusions and renames back to the file's nodes.
LiteRT        the LiteRT C API's profiler in libLiteRt.so (the Python wrapper exposes none),
              through ctypes: one event per XNNPACK operator inside a delegate partition and one
              per TFLite op outside (its node index exact); profiling is a compile option.

Profiling costs time per op, so the end-to-end median comes from the agent's ordinary,
unprofiled session over the same number of runs; the host reports the gap between the two.
"""

import base64
import ctypes as C
import json
import os
import tempfile
import time

NODE_SUFFIX = "_kernel_time"
ORT_DTYPES = {"float": "float32", "float16": "float16", "int8": "int8", "uint8": "uint8",
              "int16": "int16", "uint16": "uint16", "int32": "int32", "int64": "int64"}


def _ort_dtype(args):
    for shape in args.get("input_type_shape") or []:
        for k in shape:
            return ORT_DTYPES.get(k, k)
    return None


def profile_onnxruntime(path, threads, x, runs, warmup):
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekit-profile-") as tmp:
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        opts.enable_profiling = True
        opts.profile_file_prefix = os.path.join(tmp, "ort")
        opts.optimized_model_filepath = os.path.join(tmp, "executed.onnx")
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_file_name", "weights.bin")
        opts.add_session_config_entry(
            "session.optimized_model_external_initializers_min_size_in_bytes", "64")
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x}
        for _ in range(warmup):
            sess.run(None, feed)
        wall = []
        for _ in range(runs):
            t = time.perf_counter()
            sess.run(None, feed)
            wall.append((time.perf_counter() - t) * 1e3)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
        with open(opts.optimized_model_filepath, "rb") as f:
            graph = f.read()
    run_windows = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                          if e.get("cat") == "Session" and e.get("name") == "model_run")[warmup:]
    nodes = sorted((e for e in events if e.get("cat") == "Node"
                    and str(e.get("name", "")).endswith(NODE_SUFFIX)), key=lambda e: e["ts"])
    order, info = [], {}
    per_run = [dict() for _ in run_windows]
    r = 0
    for e in nodes:
        while r < len(run_windows) and e["ts"] > run_windows[r][1]:
            r += 1
        if r == len(run_windows):
            break
        if e["ts"] < run_windows[r][0]:
            continue  # a warm-up run's node
        key = e["name"][: -len(NODE_SUFFIX)]
        if key not in info:
            order.append(key)
            info[key] = e.get("args", {})
        per_run[r][key] = per_run[r].get(key, 0.0) + float(e["dur"])
    ops = [{"key": k, "op": info[k].get("op_name", "?"),
            "samples_us": [run.get(k, 0.0) for run in per_run],
            "delegated": False, "provider": info[k].get("provider"),
            "dtype": _ort_dtype(info[k])} for k in order]
    return {"profiler": f"onnxruntime {ort.__version__} profiler (per node kernel time)",
            "ops": ops, "profiled_run_ms": wall,
            "executed_graph_b64": base64.b64encode(graph).decode("ascii"),
            "unit_us": 1}


# --- LiteRT: the C profiler through ctypes -----------------------------------------------------

class _MemUsage(C.Structure):
    _fields_ = [("total_allocated_bytes", C.c_size_t), ("in_use_allocated_bytes", C.c_size_t),
                ("private_footprint_bytes", C.c_size_t)]


class _ProfiledEvent(C.Structure):  # litert/c/litert_profiler_event.h
    _fields_ = [("tag", C.c_char_p), ("event_type", C.c_int),
                ("start_timestamp_us", C.c_uint64), ("elapsed_time_us", C.c_uint64),
                ("begin_mem_usage", _MemUsage), ("end_mem_usage", _MemUsage),
                ("event_metadata1", C.c_uint64), ("event_metadata2", C.c_uint64),
                ("event_source", C.c_int)]


OPERATOR_INVOKE = 2  # a TFLite kernel ran: metadata1 = its node index
DELEGATE_OPERATOR = 8  # an operator inside a delegate partition: metadata1 = its index there
_vp = C.c_void_p


class LiteRtProfiled:
    """A compiled model with the profiler on (LiteRT C API, CPU, XNNPACK as shipped)."""

    def __init__(self, path, threads):
        import ai_edge_litert

        lib = C.CDLL(os.path.join(os.path.dirname(ai_edge_litert.__file__), "libLiteRt.so"))
        self.lib = lib
        sigs = {
            "LiteRtCreateOpaqueOptions": [C.c_char_p, _vp, _vp, C.POINTER(_vp)],
            "LiteRtAddOpaqueOptions": [_vp, _vp], "LiteRtCreateOptions": [C.POINTER(_vp)],
            "LiteRtSetOptionsHardwareAccelerators": [_vp, C.c_int],
            "LiteRtCreateEnvironment": [C.c_int, _vp, C.POINTER(_vp)],
            "LiteRtCreateModelFromFile": [_vp, C.c_char_p, C.POINTER(_vp)],
            "LiteRtCreateCompiledModel": [_vp, _vp, _vp, C.POINTER(_vp)],
            "LiteRtCompiledModelGetProfiler": [_vp, C.POINTER(_vp)],
            "LiteRtGetModelSignature": [_vp, C.c_size_t, C.POINTER(_vp)],
            "LiteRtGetNumSignatureInputs": [_vp, C.POINTER(C.c_size_t)],
            "LiteRtGetNumSignatureOutputs": [_vp, C.POINTER(C.c_size_t)],
            "LiteRtGetSignatureInputTensorByIndex": [_vp, C.c_size_t, C.POINTER(_vp)],
            "LiteRtGetSignatureOutputTensorByIndex": [_vp, C.c_size_t, C.POINTER(_vp)],
            "LiteRtGetRankedTensorType": [_vp, _vp],
            "LiteRtGetCompiledModelInputBufferRequirements":
                [_vp, C.c_size_t, C.c_size_t, C.POINTER(_vp)],
            "LiteRtGetCompiledModelOutputBufferRequirements":
                [_vp, C.c_size_t, C.c_size_t, C.POINTER(_vp)],
            "LiteRtCreateManagedTensorBufferFromRequirements": [_vp, _vp, _vp, C.POINTER(_vp)],
            "LiteRtLockTensorBuffer": [_vp, C.POINTER(_vp), C.c_int],
            "LiteRtUnlockTensorBuffer": [_vp],
            "LiteRtRunCompiledModel":
                [_vp, C.c_size_t, C.c_size_t, C.POINTER(_vp), C.c_size_t, C.POINTER(_vp)],
            "LiteRtStartProfiler": [_vp], "LiteRtStopProfiler": [_vp],
            "LiteRtResetProfiler": [_vp],
            "LiteRtGetNumProfilerEvents": [_vp, C.POINTER(C.c_int)],
            "LiteRtGetProfilerEvents": [_vp, C.c_int, C.POINTER(_ProfiledEvent)],
        }
        for name, argtypes in sigs.items():
            fn = getattr(lib, name, None)
            if fn is None:
                raise SystemExit(f"this ai-edge-litert's libLiteRt.so has no {name}: per-op "
                                 "profiling needs the LiteRT C profiler (ai-edge-litert 2.x)")
            fn.argtypes = argtypes
        self._keep = []
        self._noop = C.CFUNCTYPE(None, _vp)(lambda p: None)  # NULL destructors are refused
        self.env = self._out("LiteRtCreateEnvironment", 0, None)
        self.model = self._out("LiteRtCreateModelFromFile", self.env, path.encode())
        opts = self._out("LiteRtCreateOptions")
        self._ok("LiteRtSetOptionsHardwareAccelerators", opts, 1)  # CPU
        self._ok("LiteRtAddOpaqueOptions", opts,
                 self._opaque("runtime_options_string", "enable_profiling = true\n"))
        self._ok("LiteRtAddOpaqueOptions", opts, self._opaque(
            "xnnpack", f'kernel_mode = "delegate"\nnum_threads = {threads or 1}\n'))
        self.cm = self._out("LiteRtCreateCompiledModel", self.env, self.model, opts)
        self.prof = self._out("LiteRtCompiledModelGetProfiler", self.cm)
        sig = self._out("LiteRtGetModelSignature", self.model, 0)
        n_in, n_out = C.c_size_t(), C.c_size_t()
        self._ok("LiteRtGetNumSignatureInputs", sig, C.byref(n_in))
        self._ok("LiteRtGetNumSignatureOutputs", sig, C.byref(n_out))
        self.inputs = [self._buffer(sig, i, True) for i in range(n_in.value)]
        self.outputs = [self._buffer(sig, i, False) for i in range(n_out.value)]

    def _ok(self, name, *args):
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise SystemExit(f"LiteRT {name} failed (status {status})")

    def _out(self, name, *args):
        h = _vp()
        self._ok(name, *args, C.byref(h))
        return h

    def _opaque(self, identifier, toml):
        payload = C.create_string_buffer(toml.encode())
        self._keep.append(payload)
        return self._out("LiteRtCreateOpaqueOptions", identifier.encode(),
                         C.cast(payload, _vp), C.cast(self._noop, _vp))

    def _buffer(self, sig, i, is_input):
        kind = "Input" if is_input else "Output"
        t = self._out(f"LiteRtGetSignature{kind}TensorByIndex", sig, i)
        ttype = C.create_string_buffer(512)  # LiteRtRankedTensorType, opaque here
        self._keep.append(ttype)
        self._ok("LiteRtGetRankedTensorType", t, ttype)
        req = self._out(f"LiteRtGetCompiledModel{kind}BufferRequirements", self.cm, 0, i)
        return self._out("LiteRtCreateManagedTensorBufferFromRequirements", self.env, ttype, req)

    def write(self, arr):
        p = _vp()
        self._ok("LiteRtLockTensorBuffer", self.inputs[0], C.byref(p), 1)
        raw = arr.tobytes()
        C.memmove(p, raw, len(raw))
        self._ok("LiteRtUnlockTensorBuffer", self.inputs[0])

    def run(self):
        ins = (_vp * len(self.inputs))(*self.inputs)
        outs = (_vp * len(self.outputs))(*self.outputs)
        self._ok("LiteRtRunCompiledModel", self.cm, 0, len(self.inputs), ins,
                 len(self.outputs), outs)

    def events(self):
        n = C.c_int()
        self._ok("LiteRtGetNumProfilerEvents", self.prof, C.byref(n))
        arr = (_ProfiledEvent * max(n.value, 1))()
        if n.value:
            self._ok("LiteRtGetProfilerEvents", self.prof, n.value, arr)
        return [(e.tag.decode(errors="replace") if e.tag else "", e.event_type,
                 float(e.elapsed_time_us), int(e.event_metadata1)) for e in arr[: n.value]]


def profile_litert(path, threads, x, runs, warmup):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # the file's ops (index order), their output dtypes: the host aligns XNNPACK's operators
    interp = Interpreter(model_path=path, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    file_ops = [{"index": int(o["index"]), "op": o["op_name"],
                 "dtype": (np.dtype(tensors[o["outputs"][0]]["dtype"]).name
                           if len(o["outputs"]) and o["outputs"][0] in tensors else None)}
                for o in interp._get_ops_details()]
    del interp
    pm = LiteRtProfiled(path, threads)
    pm.write(np.ascontiguousarray(x))
    for _ in range(warmup):
        pm.run()
    per_run, wall = [], []
    for _ in range(runs):
        # one run per start/stop/reset: each run's events are exactly that run's
        pm._ok("LiteRtStartProfiler", pm.prof)
        t = time.perf_counter()
        pm.run()
        wall.append((time.perf_counter() - t) * 1e3)
        pm._ok("LiteRtStopProfiler", pm.prof)
        per_run.append([e for e in pm.events() if e[1] in (OPERATOR_INVOKE, DELEGATE_OPERATOR)])
        pm._ok("LiteRtResetProfiler", pm.prof)
    lengths = {len(r) for r in per_run}
    if len(lengths) != 1:
        raise SystemExit(f"LiteRT reported a different number of op events per run "
                         f"({sorted(lengths)}): cannot line runs up")
    # The event struct is LiteRT's C layout, read through ctypes: a release that changed it
    # would show as empty tags or op times that do not fit inside their run.
    for i, run in enumerate(per_run):
        if not run or any(not e[0] for e in run) or \
                sum(e[2] for e in run) / 1e3 > wall[i] * 1.5 + 1:
            raise SystemExit("the LiteRT profiler's events do not fit this ai-edge-litert "
                             "(empty tags, or op times longer than their run): its event "
                             "layout changed; report it with `edgekit doctor`'s versions")
    first = per_run[0]
    ops = []
    partition = 0
    for i, (tag, kind, _, meta) in enumerate(first):
        if kind == DELEGATE_OPERATOR and meta == 0 and i:
            partition += 1
        ops.append({"key": f"xnn:{partition}:{meta}" if kind == DELEGATE_OPERATOR
                    else f"node:{meta}", "op": tag,
                    "samples_us": [run[i][2] for run in per_run],
                    "delegated": kind == DELEGATE_OPERATOR,
                    "partition": partition if kind == DELEGATE_OPERATOR else None,
                    "node": None if kind == DELEGATE_OPERATOR else meta,
                    "dtype": _xnn_dtype(tag) if kind == DELEGATE_OPERATOR else None})
    for op in ops:
        if op["node"] is not None and op["node"] < len(file_ops):
            op["dtype"] = file_ops[op["node"]]["dtype"]
    return {"profiler": "LiteRT C profiler (libLiteRt.so): XNNPACK operators in delegate "
                        "partitions, TFLite ops outside",
            "ops": ops, "profiled_run_ms": wall, "file_ops": file_ops, "unit_us": 1}


def _xnn_dtype(tag):
    """'Fully Connected (NC, QS8) GEMM' -> int8: XNNPACK names its datatype in the tag."""
    inside = tag.split("(", 1)[1].split(")", 1)[0] if "(" in tag else ""
    for code, dtype in (("QD8", "int8"), ("QS8", "int8"), ("QU8", "uint8"), ("QC8", "int8"),
                        ("F16", "float16"), ("F32", "float32"), ("X32", "32-bit"),
                        ("X16", "16-bit"), ("X8", "8-bit")):
        if code in inside:
            return dtype
    return None


PROFILERS = {"onnxruntime": profile_onnxruntime, "litert": profile_litert}
