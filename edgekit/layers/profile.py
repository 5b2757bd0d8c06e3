"""`edgekit profile`: where the time goes, per op, per module block and per op type.

The device agent runs the runtime's own profiler (bench/agent_profile.py: ONNX Runtime's,
LiteRT's C profiler) and sends raw per-op samples; here each op is tied to the PyTorch module it
came from (layers.json, written at export; ONNX Runtime's fused/renamed nodes are followed
through the optimized graph the session ran; XNNPACK's operators are lined up with the TFLite
ops by kind), then aggregated. Trust gate, as for `bench`: the per-op medians summed vs the
end-to-end median of unprofiled runs; the gap is reported, and a gap over ±20 % says the
profile's shares, not its milliseconds, are what to read.

JSON contract: {"rows": [{"op", "module", "ms", "share", "delegated", "dtype", ...}],
"total_ms", "end_to_end_median_ms", "gap", "by_block", "by_op_type", "module_coverage", ...}
"""

from __future__ import annotations

import base64
import difflib
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.artifact import Artifact
from edgekit.errors import UsageError
from edgekit.layers.modules import LayerMap
from edgekit.registry import Registry

GAP_LIMIT = 0.20  # per-op sum vs end-to-end median: beyond this the shares are what to read
PROFILED_FORMATS = ("onnx", "tflite")


@dataclass(frozen=True)
class OpModules:
    """How one runtime's profiled ops map to modules: `modules(raw, artifact, layers)` returns,
    per raw op (same order), (module path or None, the file op it was matched to or None)."""

    modules: Callable[[dict[str, Any], Artifact, LayerMap | None],
                      list[tuple[str | None, str | None]]]


OP_MODULES: Registry[OpModules] = Registry("profile op mapper")


def _onnx_modules(raw: dict[str, Any], art: Artifact, layers: LayerMap | None
                  ) -> list[tuple[str | None, str | None]]:
    from edgekit.layers.onnx_graph import executed_modules, load_graph, node_keys, resolve

    file_graph = load_graph(art.model_path)
    file_ops = layers.ops if layers is not None else resolve(file_graph)[0]
    executed = load_graph(base64.b64decode(raw["executed_graph_b64"]))
    mods = executed_modules(executed, file_graph, file_ops)
    keys = node_keys(executed)
    # The profiler names a nameless node '<OpType>_<its graph index>', an index the saved graph
    # does not keep: the k-th such op of a type is the k-th nameless node of that type (the
    # profile lists ops in execution order, the saved graph in the same topological order).
    nameless: dict[str, list[str]] = {}
    for k, n in zip(keys, executed.graph.node, strict=True):
        if not n.name:
            nameless.setdefault(n.op_type, []).append(k)
    taken: dict[str, int] = {}
    out = []
    for op in raw["ops"]:
        key: str | None = op["key"]
        if key not in mods:
            queue = nameless.get(op["op"], [])
            i = taken.get(op["op"], 0)
            key = queue[i] if i < len(queue) else None
            taken[op["op"]] = i + 1
        out.append((mods.get(key) if key else None, key))
    return out


# XNNPACK operator names -> the TFLite op kind they implement (for lining the two sequences up)
XNN_TO_TFLITE = {
    "Static Reshape": "RESHAPE", "Copy": "RESHAPE", "Fully Connected": "FULLY_CONNECTED",
    "Transpose": "TRANSPOSE", "Add": "ADD", "HardSwish": "HARD_SWISH", "Slice": "SLICE",
    "Batch Matrix Multiply": "BATCH_MATMUL", "Multiply": "MUL", "Convolution": "CONV_2D",
    "Deconvolution": "TRANSPOSE_CONV", "Softmax": "SOFTMAX", "Reduce Max": "REDUCE_MAX",
    "Subtract": "SUB", "Exp": "EXP", "Divide": "DIV", "Sum": "SUM", "Maximum": "MAXIMUM",
    "Minimum": "MINIMUM", "Convert": "QUANTIZE", "Depthwise Convolution": "DEPTHWISE_CONV_2D",
    "Mean": "MEAN", "Constant Pad": "PAD", "Max Pooling": "MAX_POOL_2D",
    "Average Pooling": "AVERAGE_POOL_2D", "Sigmoid": "LOGISTIC", "GELU": "GELU",
    "Clamp": "RELU", "Square Root": "SQRT", "Reciprocal Square Root": "RSQRT",
    "Square": "SQUARE", "Concatenate": "CONCATENATION", "Resize Bilinear": "RESIZE_BILINEAR",
    "Tanh": "TANH", "Leaky ReLU": "LEAKY_RELU", "ELU": "ELU", "Negate": "NEG",
    "Even Split": "SPLIT", "Squared Difference": "SQUARED_DIFFERENCE",
}
_EQUIVALENT = {"DEQUANTIZE": "QUANTIZE", "RELU6": "RELU", "RELU_N1_TO_1": "RELU",
               "DEPTHWISE_CONV_2D": "CONV_2D", "SPLIT_V": "SPLIT", "STRIDED_SLICE": "SLICE",
               "SQUEEZE": "RESHAPE", "EXPAND_DIMS": "RESHAPE"}


def _tflite_kind(op: str) -> str:
    if op.isupper():
        return _EQUIVALENT.get(op, op)
    base = op.split(" (")[0]
    kind = XNN_TO_TFLITE.get(base, base.upper().replace(" ", "_"))
    return _EQUIVALENT.get(kind, kind)


def _tflite_modules(raw: dict[str, Any], art: Artifact, layers: LayerMap | None
                    ) -> list[tuple[str | None, str | None]]:
    """TFLite ops outside a delegate carry their node index; XNNPACK's operators are lined up
    with the file's ops by kind (difflib), the non-delegated nodes as anchors; an XNNPACK
    operator with no TFLite counterpart (a reshape it adds) joins the previous matched op."""
    file_ops = raw.get("file_ops") or []
    tfl = [_tflite_kind(o["op"]) for o in file_ops]
    prof = [_tflite_kind(o["op"]) if o.get("delegated") else f"#{o['node']}"
            for o in raw["ops"]]
    node_of: dict[int, int] = {}
    # anchors: non-delegated ops are exact; align each stretch between anchors by kind
    anchors = [(i, o["node"]) for i, o in enumerate(raw["ops"]) if not o.get("delegated")]
    bounds = [(-1, -1), *anchors, (len(prof), len(tfl))]
    for (p0, t0), (p1, t1) in zip(bounds, bounds[1:], strict=False):
        if 0 <= p0 < len(prof):
            node_of[p0] = t0
        a, b = tfl[t0 + 1:t1], prof[p0 + 1:p1]
        sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
        for ta, pb, n in sm.get_matching_blocks():
            for k in range(n):
                node_of[p0 + 1 + pb + k] = t0 + 1 + ta + k
    out: list[tuple[str | None, str | None]] = []
    last: int | None = None
    for i in range(len(prof)):
        node = node_of.get(i, last)
        last = node if node is not None else last
        key = str(node) if node is not None else None
        out.append((layers.ops.get(key) if layers is not None and key else None, key))
    return out


OP_MODULES.register("onnxruntime", OpModules(_onnx_modules))
OP_MODULES.register("litert", OpModules(_tflite_modules))


def block_of(module: str | None) -> str:
    """A transformer/conv block: the module path up to its deepest numbered component
    ('stages.1.blocks.0.attn.proj' -> 'stages.1.blocks.0'); unnumbered parts (stem, head)
    by their top-level name."""
    if module is None:
        return "?"
    if module == "":
        return "(model)"
    parts = module.split(".")
    numbered = [i for i, p in enumerate(parts) if p.isdigit()]
    return ".".join(parts[: numbered[-1] + 1]) if numbered else parts[0]


def _grouped(rows: list[dict[str, Any]], key: str, total: float) -> list[dict[str, Any]]:
    sums: dict[str, list[float]] = {}
    for r in rows:
        s = sums.setdefault(r[key], [0.0, 0])
        s[0] += r["ms"]
        s[1] += 1
    return [{key: k, "ms": ms, "share": ms / total if total else 0.0, "ops": int(n)}
            for k, (ms, n) in sorted(sums.items(), key=lambda kv: -kv[1][0])]


def summarize(raw: dict[str, Any], art: Artifact, layers: LayerMap | None) -> dict[str, Any]:
    """The JSON contract from the agent's raw per-op samples."""
    runtime = raw["runtime"]
    if runtime not in OP_MODULES:
        raise UsageError(f"no op-to-module mapping for {runtime}",
                         hint=f"profiles: {', '.join(OP_MODULES.list())}")
    mapped = OP_MODULES.get(runtime).modules(raw, art, layers)
    rows = []
    for op, (module, file_op) in zip(raw["ops"], mapped, strict=True):
        samples = op["samples_us"]
        rows.append({"op": op["op"], "module": module, "ms": statistics.median(samples) / 1e3,
                     "delegated": bool(op.get("delegated")), "dtype": op.get("dtype"),
                     "key": op["key"], "file_op": file_op,
                     **({"partition": op["partition"]} if op.get("partition") is not None
                        else {}),
                     "block": block_of(module),
                     "in_source": layers.in_source(module) if layers is not None
                     else None})
    total = sum(r["ms"] for r in rows)
    for r in rows:
        r["share"] = r["ms"] / total if total else 0.0
    e2e = statistics.median(raw["end_to_end_ms"])
    gap = total / e2e - 1 if e2e else None
    weighted = sum(r["ms"] for r in rows if r["in_source"])
    mapped_ms = sum(r["ms"] for r in rows if r["module"] is not None)
    return {
        "artifact": str(art.path), "model": art.manifest.model, "format": art.manifest.format,
        "quant": art.manifest.quant, "device": raw.get("device", "local"),
        "emulated": bool(raw.get("emulated")), "runtime": runtime,
        "runtime_version": raw.get("runtime_version"), "profiler": raw.get("profiler"),
        "machine": raw.get("machine"), "threads": raw.get("threads"), "runs": raw.get("runs"),
        "rows": rows, "total_ms": total, "end_to_end_median_ms": e2e,
        "profiled_run_median_ms": statistics.median(raw["profiled_run_ms"])
        if raw.get("profiled_run_ms") else None,
        "gap": gap, "gap_ok": gap is not None and abs(gap) <= GAP_LIMIT,
        "by_block": _grouped(rows, "block", total),
        "by_op_type": _grouped(rows, "op", total),
        "module_coverage": weighted / total if total and layers is not None else None,
        "mapped_share": mapped_ms / total if total else None,
        "layers": "layers.json" if layers is not None else
                  "none (exported before edgekit recorded modules: re-export for module "
                  "paths; ONNX fp32 still maps from the file's metadata)",
        **({"instructions": raw["instructions"]} if raw.get("instructions") else {}),
    }


def profile_artifact(path: Path, device: str = "local", *, runs: int = 20,
                     threads: int | None = None, warmup: int = 5, timeout: float = 1800.0,
                     identity: Path | None = None, known_hosts: Path | None = None,
                     python: str = "python3") -> dict[str, Any]:
    from edgekit.bench.collectors import BenchConfig, collector_for

    art = Artifact.open(path)
    if art.manifest.format not in PROFILED_FORMATS:
        raise UsageError(f"edgekit profile reads {', '.join(PROFILED_FORMATS)} artifacts; this "
                         f"one is {art.manifest.format}",
                         hint="export the model --to onnx or tflite to profile it, or use "
                              "`edgekit bench` for end-to-end latency")
    if runs < 1:
        raise UsageError("--runs must be ≥ 1", hint="use --runs 20")
    layers = LayerMap.load(art.path)
    collector = collector_for(device, identity=identity, known_hosts=known_hosts)
    if not hasattr(collector, "profile"):
        raise UsageError(f"{device} cannot run a per-op profile",
                         hint="profile on local, ssh://, adb:// or qemu:// devices")
    raw = collector.profile(art.path, BenchConfig(threads=threads, runs=runs, warmup=warmup,
                                                  timeout=timeout, python=python))
    return summarize(raw, art, layers)


def render_text(p: dict[str, Any], top: int = 10) -> str:
    unit = "emulated ms (shares only: qemu time is not speed)" if p["emulated"] else "ms"
    lines = [f"{p['model']} {p['quant']} {p['format']} on {p['device']} ({p['runtime']} "
             f"{p['runtime_version'] or ''}, {p['machine']}): {len(p['rows'])} ops, {unit}"]
    if p["emulated"] and p.get("instructions"):
        lines.append(f"  guest instructions per inference: "
                     f"{p['instructions']['instructions_per_inference'] / 1e6:.1f} M "
                     f"({p['instructions']['cpu']})")
    gap = "" if p["gap"] is None else f"{p['gap']:+.0%}"
    lines.append(f"  per-op sum {p['total_ms']:.3f} ms vs end-to-end median "
                 f"{p['end_to_end_median_ms']:.3f} ms: gap {gap}"
                 + ("" if p["gap_ok"] else f" (over ±{GAP_LIMIT:.0%}: read the shares, the "
                                           "profiler's overhead inflates small ops)"))
    if p["module_coverage"] is not None:
        lines.append(f"  time in ops mapped to a source module: {p['module_coverage']:.1%}")
    else:
        lines.append(f"  modules: {p['layers']}")
    lines.append(f"\n  top {top} ops")
    for r in sorted(p["rows"], key=lambda r: -r["ms"])[:top]:
        lines.append(f"    {r['ms']:8.3f} {r['share']:6.1%}  {r['op'][:34]:34s} "
                     f"{(r['dtype'] or ''):8s} {'D' if r['delegated'] else ' '} "
                     f"{r['module'] if r['module'] is not None else '?'}")
    lines.append(f"\n  by block (top {top})")
    for b in p["by_block"][:top]:
        lines.append(f"    {b['ms']:8.3f} {b['share']:6.1%}  {b['block']} ({b['ops']} ops)")
    lines.append(f"\n  by op type (top {top})")
    for b in p["by_op_type"][:top]:
        lines.append(f"    {b['ms']:8.3f} {b['share']:6.1%}  {b['op']} ({b['ops']} ops)")
    lines.append("  (D = inside a delegate partition)")
    return "\n".join(lines)
