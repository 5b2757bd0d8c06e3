"""ONNX precision modes besides int8: fp16 (`--quant fp16`) and weight-only int8 (`--quant w8`).

Both rewrite the fp32 file edgekit's ONNX exporter wrote (torch.onnx dynamo, one flat graph) in
place and return the manifest's details. w8a16 (int16 activations) is a plan of the static
quantizer in quant/onnx.py.

fp16. ONNX Runtime's CPU execution provider has fp16 kernels for few op types, and which ones
depends on the CPU: its fp16 arithmetic kernels (Conv, MatMul, Gemm, Add, Mul, …) are registered
only on ARM64 cores with FP16 arithmetic (ARMv8.2-A FP16: Cortex-A55/A75 and later), not on
ARMv8.0 cores (Cortex-A53/A72) nor on x86-64. Where a node of an fp16 graph has no fp16 kernel,
ORT's session initialization silently wraps it in Cast nodes (`InsertedPrecisionFreeCast_*`) and
computes it in fp32; and two ARM64 fp16 kernels that exist fail (grouped convolutions compute
wrong results, an opset-19+ AveragePool does not load). `convert_fp16` therefore decides per
node, from the kernel table measured below for the target ISA: nodes with a usable fp16 kernel
compute in fp16, the rest stay fp32 with explicit Casts at the boundaries, weights are stored in
fp16 (a large weight an fp32 node reads is stored fp16 behind a Cast that ORT folds at load),
inputs and outputs stay fp32. It also reports what ORT on the converting host still does in
fp32 (the kernels this host lacks for the target).
"""

from __future__ import annotations

import platform
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ExportError, UsageError

# ------------------------------------------------------------------------ fp16 kernel table
#
# ONNX Runtime 1.31.1, CPUExecutionProvider, default domain, opset 20. Measured in two ways:
# 1. Kernels: a one-node model per op type with fp16 inputs/outputs (convolutions, matmuls with
#    a constant and a dynamic B, every elementwise/normalization/pooling/reduction/data-movement
#    op of timm's vision models; 84 cases), an ORT session created with
#    `optimized_model_filepath` (ORT_DISABLE_ALL: only the mandatory transformers run), and
#    whether the saved graph gained Cast nodes (ORT's InsertCastTransformer,
#    `InsertedPrecisionFreeCast_*`). On this x86-64 host (AMD EPYC, AVX2, no AVX512-FP16) and on
#    the emulated ARM device (`make arm-device`: the real aarch64 onnxruntime 1.31.1 wheel under
#    qemu-aarch64) as Cortex-A76 (ARMv8.2-A + FP16) and Cortex-A53 (ARMv8.0). The kernel
#    registry (`onnxruntime.capi._pybind_state.get_all_opkernel_def()`) lists the same fp16
#    kernels on each (47 op types on x86-64 and Cortex-A53, 61 on Cortex-A76): ORT registers
#    its fp16 arithmetic kernels only where MLAS reports fp16 acceleration at run time.
# 2. Results: each fp16 kernel on the emulated Cortex-A76, at the default optimization level
#    (ORT_ENABLE_ALL, which moves fp16 convolutions and pools to NHWC) and at ORT_DISABLE_ALL,
#    against the same fp16 model computed in fp32 on x86-64. Two kernels that exist are not
#    usable; they are kept fp32 on arm64 (FP16_ARM64_UNUSABLE).

# fp16 kernels on every CPU measured. They move or select data, or are cheap elementwise ops:
# they compute in the precision of their input (no Cast pair around them for nothing).
FP16_FOLLOW_OPS = frozenset({
    "Reshape", "Transpose", "Split", "Slice", "Concat", "Flatten", "Squeeze", "Unsqueeze",
    "Identity", "Expand", "Gather", "Shape", "Clip", "Max", "Min", "Round", "Sign", "Mod",
    "IsNaN", "IsInf", "LayerNormalization"})
# fp16 arithmetic kernels, per target ISA (`arm64` = ARMv8.2-A with FP16 arithmetic, measured
# as Cortex-A76; an ARMv8.0 core has the x86_64 set and ORT computes these in fp32 there).
FP16_COMPUTE_OPS: dict[str, frozenset[str]] = {
    "arm64": frozenset({"Conv", "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Relu",
                        "LeakyRelu", "Gelu", "Erf", "MaxPool", "GlobalAveragePool"}),
    "x86_64": frozenset(),
}
# fp16 kernels the Cortex-A76 has but that fail there (2. above).
FP16_ARM64_UNUSABLE = {
    "AveragePool": "ORT 1.31.1 ARM64: at the default optimization level the NHWC layout "
                   "transformer turns an fp16 AveragePool of opset 19+ into "
                   "com.ms.internal.nhwc.AveragePool(19), which has no kernel: the session "
                   "fails to load (measured on the emulated Cortex-A76)",
    "Conv (grouped)": "ORT 1.31.1 ARM64 fp16 grouped convolution (group > 1 and not depthwise: "
                      "groups of several channels, or a channel multiplier) computes wrong "
                      "results: logit cosine 0.03-0.47 to fp32 on the emulated Cortex-A76 (group "
                      "1 and depthwise are exact)",
}
# The block list: op types measured to have no fp16 CPU kernel (ORT would insert Casts around
# them), kept fp32. Op types measured nowhere are kept fp32 too, with their own reason.
_NO_FP16_EVERYWHERE = frozenset({
    "BatchNormalization", "InstanceNormalization", "GroupNormalization", "Softmax",
    "LogSoftmax", "HardSwish", "HardSigmoid", "Sigmoid", "Tanh", "Exp", "Log", "Sqrt", "Pow",
    "Reciprocal", "Abs", "Neg", "Floor", "Ceil", "Sin", "Cos", "Elu", "Selu", "Softplus",
    "Softsign", "Mish", "PRelu", "ReduceMean", "ReduceSum", "ReduceMax", "ReduceL2",
    "GlobalMaxPool", "ConvTranspose", "Resize", "Pad", "Tile", "Where", "DepthToSpace",
    "SpaceToDepth", "Einsum", "CumSum", "TopK", "Dropout", "Sum", "Mean", "Equal", "Greater",
    "Less"})
ORT_CPU_NO_FP16_OPS: dict[str, frozenset[str]] = {
    "arm64": _NO_FP16_EVERYWHERE,
    "x86_64": _NO_FP16_EVERYWHERE | FP16_COMPUTE_OPS["arm64"] | {"AveragePool"},
}
FP16_ISAS = tuple(FP16_COMPUTE_OPS)
_ISA_DESCRIPTION = {"arm64": "ARM64 with FP16 arithmetic (ARMv8.2-A+, measured as Cortex-A76)",
                    "x86_64": "x86-64 (and ARMv8.0 cores, measured as Cortex-A53)"}
_ORT_VERSION_MEASURED = "1.31.1"

# A weight (float initializer) an fp32 node reads is stored fp16 behind a Cast from this many
# elements on (ORT constant-folds the Cast at load); smaller ones are not worth a node.
FP16_STORAGE_MIN_ELEMENTS = 1024
_FP16_MAX = 65504.0
# Ops whose output type is an attribute, or that carry subgraphs: never converted.
_OWN_TYPE_OPS = frozenset({"Cast", "CastLike", "ConstantOfShape", "EyeLike", "RandomNormal",
                           "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                           "Multinomial", "If", "Loop", "Scan"})

_F32, _F16 = 1, 10  # onnx.TensorProto.FLOAT, FLOAT16


def _noop(step: str) -> None:
    return None


def _grouped_conv(node: Any, inits: dict[str, Any]) -> bool:
    """A Conv with group > 1 that is not depthwise (one input and one output channel per
    group), or whose weight shape is unknown."""
    group = next((a.i for a in node.attribute if a.name == "group"), 1)
    if group == 1:
        return False
    weight = inits.get(node.input[1]) if len(node.input) > 1 else None
    return weight is None or list(weight.dims[:2]) != [group, 1]


class _Schemas:
    """Which inputs/outputs of a node carry its floating-point compute type (a type parameter
    that admits float16, e.g. Conv's T), from the ONNX op schemas at the model's opset."""

    def __init__(self, opset: int) -> None:
        self.opset = opset
        self._cache: dict[str, Any] = {}

    def _schema(self, op: str) -> Any:
        import onnx

        if op not in self._cache:
            try:
                self._cache[op] = onnx.defs.get_schema(op, self.opset, "")
            except onnx.defs.SchemaError:
                self._cache[op] = None
        return self._cache[op]

    def slots(self, op: str, n_in: int, n_out: int) -> tuple[list[bool], list[bool]] | None:
        """(per input, per output: carries the compute type), or None without a schema."""
        schema = self._schema(op)
        if schema is None or not schema.inputs:
            return None
        halfable = {t.type_param_str for t in schema.type_constraints
                    if "tensor(float16)" in t.allowed_type_strs}

        def param(formals: Any, i: int) -> str:
            return str(formals[min(i, len(formals) - 1)].type_str) if formals else ""

        ins = [param(schema.inputs, i) for i in range(n_in)]
        flowing = {p for p in ins if p in halfable}
        return ([p in flowing for p in ins],
                [param(schema.outputs, j) in flowing for j in range(n_out)])


def _elem_types(model: Any) -> dict[str, int]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - fall back to the exporter's own value_info
        inferred = model
    types = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        if v.type.HasField("tensor_type") and v.type.tensor_type.elem_type:
            types[v.name] = v.type.tensor_type.elem_type
    for init in model.graph.initializer:
        types[init.name] = init.data_type
    return types


def _constants_to_initializers(model: Any) -> None:
    """Float Constant nodes (a `value` tensor) become initializers of the same name."""
    from onnx import numpy_helper

    keep = []
    for node in model.graph.node:
        attr = node.attribute[0] if node.op_type == "Constant" and len(node.attribute) == 1 \
            else None
        if attr is not None and attr.name == "value" and attr.t.data_type == _F32:
            tensor = numpy_helper.from_array(numpy_helper.to_array(attr.t), node.output[0])
            model.graph.initializer.append(tensor)
        else:
            keep.append(node)
    del model.graph.node[:]
    model.graph.node.extend(keep)


def _to_fp16(array: np.ndarray) -> tuple[np.ndarray, int]:
    """The fp16 array and how many finite values lay beyond fp16's range (clipped)."""
    finite = np.isfinite(array)
    clipped = int(np.count_nonzero(finite & (np.abs(array) > _FP16_MAX)))
    return np.where(finite, np.clip(array, -_FP16_MAX, _FP16_MAX), array).astype(np.float16), \
        clipped


def _ort_on_this_host(path: Path, half_nodes: dict[str, str]) -> dict[str, Any]:
    """What ONNX Runtime's CPU EP on this host does with the fp16 graph at session creation:
    the Casts it inserts, and which of the fp16 nodes (`half_nodes`: name -> op type) it
    computes in fp32 (no fp16 kernel here) or expands (a function op such as Gelu without a
    kernel here becomes primitives)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekit-fp16-") as tmp:
        saved = Path(tmp) / "initialized.onnx"
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.optimized_model_filepath = str(saved)
        try:
            ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises many types
            raise ExportError(f"ONNX Runtime cannot load the fp16 model: {type(exc).__name__}: "
                              f"{str(exc)[:300]}", path=path,
                              hint="report the model; --quant fp32 or w8 meanwhile") from exc
        graph = onnx.load(str(saved), load_external_data=False).graph
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*graph.value_info, *graph.input, *graph.output)}
    present = {n.name: n for n in graph.node}
    tag = "InsertedPrecisionFreeCast"  # ORT's Casts and the fp32 tensors between them

    def fp32_here(node: Any) -> bool:
        out = node.output[0]
        return out.startswith(tag) or types.get(out) == _F32

    computed = Counter(op for name, op in half_nodes.items()
                       if name in present and fp32_here(present[name]))
    expanded = Counter(op for name, op in half_nodes.items() if name not in present)
    return {"machine": platform.machine(), "onnxruntime": ort.__version__,
            "inserted_casts": sum(1 for n in graph.node if n.op_type == "Cast"
                                  and n.name.startswith(tag)),
            "fp16_ops_computed_fp32_here": dict(computed.most_common()),
            "fp16_ops_expanded_here": dict(expanded.most_common())}


def convert_fp16(path: Path, on_step: Callable[[str], None] = _noop, isa: str = "arm64"
                 ) -> dict[str, Any]:
    """Rewrite the fp32 ONNX model at `path` in place: fp16 weights, fp16 compute for the nodes
    ONNX Runtime's CPU EP has a usable fp16 kernel for on `isa` (FP16_ISAS: "arm64" = ARMv8.2-A
    with FP16 arithmetic, "x86_64" = also ARMv8.0), fp32 for the rest (ORT_CPU_NO_FP16_OPS,
    FP16_ARM64_UNUSABLE, unmeasured op types), fp32 graph inputs and outputs. Returns the
    manifest details (JSON-serializable)."""
    import onnx
    from onnx import helper, numpy_helper

    if isa not in FP16_COMPUTE_OPS:
        raise UsageError(f"no fp16 kernel table for ISA '{isa}'",
                         hint=f"use one of {', '.join(FP16_ISAS)}")
    on_step(f"fp16: assigning precisions from ORT's CPU fp16 kernels on {isa}")
    bytes_before = path.stat().st_size
    model = onnx.load(str(path))
    graph = model.graph
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in graph.node for a in n.attribute):  # they read outer tensors by name
        raise ExportError("the fp16 conversion handles flat graphs only; this one has control "
                          "flow (If/Loop/Scan subgraphs)", path=path,
                          hint="--quant fp32 or w8 for this model")
    _constants_to_initializers(model)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    schemas = _Schemas(opset)
    types = _elem_types(model)
    inits = {i.name: i for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    compute = FP16_COMPUTE_OPS[isa]

    # 1. precision of each node, in topological order; `home` is the type a float tensor is
    #    produced in (fp32 inputs, fp16 or fp32 node outputs; initializers decided in 2.)
    home: dict[str, int] = {name: _F32 for name in graph_inputs if types.get(name) == _F32}
    half_nodes: set[int] = set()
    reasons: dict[str, str] = {}  # label (op type, or op type and case) -> why fp32
    labels: dict[int, str] = {}  # fp32 node -> its label
    slots: dict[int, tuple[list[bool], list[bool]]] = {}
    for idx, node in enumerate(graph.node):
        op = label = node.op_type
        if op == "Conv" and isa == "arm64" and _grouped_conv(node, inits):
            label = "Conv (grouped)"
        found = None if node.domain not in ("", "ai.onnx") or op in _OWN_TYPE_OPS \
            else schemas.slots(op, len(node.input), len(node.output))
        float_inputs = [t for t in node.input if t and types.get(t) == _F32]
        if found is not None:
            slots[idx] = found
        if not float_inputs and not any(types.get(t) == _F32 for t in node.output):
            pass  # no float tensor: nothing to decide
        elif found is None:
            labels[idx] = label
            reasons.setdefault(label, "custom domain, subgraph or own output type: left as is")
        elif any(t and t not in types for t in node.input):
            labels[idx] = label = f"{op} (untyped)"
            reasons.setdefault(label, "tensor types unknown to shape inference")
        elif isa == "arm64" and label in FP16_ARM64_UNUSABLE:
            labels[idx] = label
            reasons[label] = FP16_ARM64_UNUSABLE[label]
        elif op in compute:
            half_nodes.add(idx)
        elif op in FP16_FOLLOW_OPS:
            activations = [t for t, s in zip(node.input, found[0], strict=False)
                           if s and t and t not in inits]
            if any(home.get(t) == _F16 for t in activations):
                half_nodes.add(idx)
            else:
                labels[idx] = label
                reasons.setdefault(label, "moves data or is elementwise between fp32 ops: "
                                   "follows its input (fp32)")
        elif op in ORT_CPU_NO_FP16_OPS[isa]:
            labels[idx] = label
            reasons[label] = (f"no fp16 kernel in ONNX Runtime {_ORT_VERSION_MEASURED}'s CPU EP "
                              f"on {_ISA_DESCRIPTION[isa]} (measured)")
        else:
            labels[idx] = label
            reasons.setdefault(label, "not measured for an ORT CPU fp16 kernel: kept fp32")
        outs = found[1] if found is not None else [False] * len(node.output)
        for t, carries in zip(node.output, outs, strict=False):
            if types.get(t) == _F32:
                home[t] = _F16 if idx in half_nodes and carries else _F32

    graph_nodes = list(graph.node)
    fp16_ops = Counter(graph.node[i].op_type for i in half_nodes)
    fp32_ops = Counter(labels.values())

    def wanted(idx: int, i: int) -> int:
        """The type node `idx` reads its float input `i` in."""
        found = slots.get(idx)
        return _F16 if idx in half_nodes and found is not None and found[0][i] else _F32

    # 2. initializers: fp16 when an fp16 node reads them, or large and only ever read through
    #    the compute type (storage; ORT folds the Cast back to fp32)
    demand: dict[str, set[int]] = {}
    free_to_cast: dict[str, bool] = {}
    for idx, node in enumerate(graph.node):
        for i, t in enumerate(node.input):
            if t in inits and inits[t].data_type == _F32 and t not in graph_inputs:
                demand.setdefault(t, set()).add(wanted(idx, i))
                found = slots.get(idx)
                ok = found is not None and found[0][i] and node.op_type not in _OWN_TYPE_OPS
                free_to_cast[t] = free_to_cast.get(t, True) and ok
    clipped = 0
    storage_only = 0
    for name, wants in demand.items():
        size = int(np.prod(inits[name].dims)) if len(inits[name].dims) else 1
        if free_to_cast[name] and (_F16 in wants or size >= FP16_STORAGE_MIN_ELEMENTS):
            half, n_clipped = _to_fp16(numpy_helper.to_array(inits[name]))
            clipped += n_clipped
            inits[name].CopyFrom(numpy_helper.from_array(half, name))
            home[name] = _F16
            storage_only += _F16 not in wants
        else:
            home[name] = _F32

    # 3. the new node list, with a Cast before the first reader that needs the other type
    cast_of: dict[tuple[str, int], str] = {}
    new_nodes = []
    casts: Counter[str] = Counter()

    def cast(tensor: str, to: int) -> str:
        key = (tensor, to)
        if key not in cast_of:
            suffix = "fp16" if to == _F16 else "fp32"
            out = f"{tensor}__{suffix}"
            cast_of[key] = out
            new_nodes.append(helper.make_node("Cast", [tensor], [out], to=to,
                                              name=f"edgekit_fp16/{tensor}__to_{suffix}"))
            casts["weights" if tensor in inits else "activations"] += 1
        return cast_of[key]

    for idx, node in enumerate(graph.node):
        for i, t in enumerate(node.input):
            if t in home and home[t] != wanted(idx, i):
                node.input[i] = cast(t, wanted(idx, i))
        new_nodes.append(node)
    # fp32 graph outputs: the fp16 producer writes `<name>__fp16`, a Cast writes the output
    renamed = {o.name: f"{o.name}__fp16" for o in graph.output if home.get(o.name) == _F16}
    for node in new_nodes:
        for seq in (node.input, node.output):
            for i, t in enumerate(seq):
                if t in renamed:
                    seq[i] = renamed[t]
    for out, inner in renamed.items():
        new_nodes.append(helper.make_node("Cast", [inner], [out], to=_F32,
                                          name=f"edgekit_fp16/{out}__to_fp32"))
        casts["outputs"] += 1
    del graph.node[:]
    graph.node.extend(new_nodes)
    del graph.value_info[:]  # the exporter's fp32 types; re-inferred below
    on_step("fp16: checking the graph (onnx.checker, shape inference)")
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the fp16 graph is invalid: {str(exc)[:300]}", path=path,
                          hint="report the model; --quant fp32 or w8 meanwhile") from exc
    onnx.save(model, str(path))
    on_step("fp16: loading it in ONNX Runtime (CPU)")
    here = _ort_on_this_host(path, {graph_nodes[i].name: graph_nodes[i].op_type
                                    for i in half_nodes if graph_nodes[i].name})

    return {
        "scheme": "fp16", "isa": isa,
        "kernel_table": f"ONNX Runtime {_ORT_VERSION_MEASURED} CPU EP fp16 kernels on "
                        f"{_ISA_DESCRIPTION[isa]}, measured (quant/onnx_precision.py)",
        "io_types": "float32 inputs and outputs (Cast nodes inside)",
        "fp16_ops": dict(fp16_ops.most_common()),
        "fp32_ops": {op: {"count": n, "reason": reasons[op]} for op, n in fp32_ops.most_common()},
        "casts_added": dict(casts),
        "initializers": dict(Counter("float16" if i.data_type == _F16 else
                                     "float32" if i.data_type == _F32 else "other"
                                     for i in model.graph.initializer)),
        "weights_stored_fp16_for_fp32_ops": storage_only,
        "weights_clipped_to_fp16_range": clipped,
        "bytes_before": bytes_before, "bytes_after": path.stat().st_size,
        "ort_on_this_host": here,
    }


# ------------------------------------------------------------------------- w8: weight-only int8

# Per op type, the axis of its constant weight that indexes output channels (the per-channel
# scale axis): Conv W [Cout, Cin/g, kH, kW]; Gemm B [K, N], or [N, K] with transB; MatMul B
# [..., K, N] (one scale per output column).
def _weight_axis(node: Any, rank: int) -> int | None:
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "MatMul":
        return rank - 1
    return None


W8_OPS = ("Conv", "Gemm", "MatMul")


def _quantize_per_channel(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Symmetric int8 per channel along `axis`: (q, scale, relative RMS error of the weight)."""
    other = tuple(a for a in range(w.ndim) if a != axis)
    absmax = np.max(np.abs(w), axis=other, keepdims=True)
    scale = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
    err = q.astype(np.float32) * scale - w
    rel = float(np.sqrt(np.mean(err ** 2)) / (np.sqrt(np.mean(w.astype(np.float64) ** 2))
                                               + 1e-30))
    return q, scale.reshape(-1), rel


def quantize_weights_int8(path: Path, on_step: Callable[[str], None] = _noop
                          ) -> dict[str, Any]:
    """Rewrite the fp32 ONNX model at `path` in place with weight-only int8: the constant
    weight of every Conv, Gemm and MatMul (B an initializer) becomes an int8 initializer,
    symmetric per output channel, behind a DequantizeLinear; activations stay float. Returns
    the manifest details."""
    import onnx
    from onnx import helper, numpy_helper

    bytes_before = path.stat().st_size
    model = onnx.load(str(path))
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 13:
        raise UsageError(f"weight-only int8 needs per-axis DequantizeLinear (opset 13+); the "
                         f"model is opset {opset}", hint="export with --opset 18 or later")
    inits = {i.name: i for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    axes: dict[str, set[int]] = {}
    ops_of: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    for node in graph.node:
        if node.op_type not in W8_OPS or len(node.input) < 2:
            continue
        name = node.input[1]
        init = inits.get(name)
        if init is None or name in graph_inputs:
            if node.op_type != "MatMul":  # MatMul of two activations: nothing to store
                skipped[node.name or name] = "weight is not a constant initializer"
            continue
        if init.data_type != _F32 or len(init.dims) < 2:
            skipped[name] = "not a float32 weight of rank >= 2"
            continue
        axis = _weight_axis(node, len(init.dims))
        assert axis is not None
        axes.setdefault(name, set()).add(axis)
        ops_of.setdefault(name, []).append(node.op_type)
    on_step(f"w8: quantizing {len(axes)} weights to int8 per channel")
    dq_nodes = []
    quantized: Counter[str] = Counter()
    errors: dict[str, float] = {}
    weight_bytes_before = weight_bytes_after = 0
    for name, found in axes.items():
        if len(found) > 1:
            skipped[name] = "shared by ops with different output-channel axes"
            continue
        (axis,) = found
        w = numpy_helper.to_array(inits[name])
        if not np.isfinite(w).all():
            skipped[name] = "non-finite values"
            continue
        q, scale, errors[name] = _quantize_per_channel(w, axis)
        graph.initializer.remove(inits[name])
        graph.initializer.extend([
            numpy_helper.from_array(q, f"{name}_quantized"),
            numpy_helper.from_array(scale, f"{name}_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), f"{name}_zero_point")])
        dq_nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_quantized", f"{name}_scale", f"{name}_zero_point"],
            [name], axis=axis, name=f"edgekit_w8/{name}/DequantizeLinear"))
        quantized.update(set(ops_of[name]))
        weight_bytes_before += w.nbytes
        weight_bytes_after += q.nbytes + scale.nbytes + scale.size
    nodes = [*dq_nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    on_step("w8: checking the graph (onnx.checker)")
    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the weight-only int8 graph is invalid: {str(exc)[:300]}", path=path,
                          hint="report the model; --quant fp16 meanwhile") from exc
    onnx.save(model, str(path))
    worst = max(errors, key=errors.__getitem__) if errors else None
    return {
        "scheme": "w8: int8 weights, symmetric per output channel (zero point 0, range "
                  "[-127, 127]) behind DequantizeLinear; float32 activations",
        "weight_axes": {"Conv": 0, "Gemm": "0 (transB=1) or 1", "MatMul": "last (B is [K, N])"},
        "quantized_weights": dict(quantized.most_common()),
        "skipped": skipped,
        "weight_bytes_before": weight_bytes_before, "weight_bytes_after": weight_bytes_after,
        "bytes_before": bytes_before, "bytes_after": path.stat().st_size,
        "weight_rel_rmse_mean": float(np.mean(list(errors.values()))) if errors else None,
        "weight_rel_rmse_worst": {"weight": worst, "value": errors[worst]} if worst else None,
    }
