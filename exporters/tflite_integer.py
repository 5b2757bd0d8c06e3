"""Full-integer TFLite (`--to tflite --quant int-only`): the file NPU and microcontroller
toolchains take — Arm's Vela for Ethos-U, TFLite Micro — where every operator computes on
integer tensors: int8 activations, int8 per-channel weights, int32 biases, integer I/O, no float
tensor and no QUANTIZE/DEQUANTIZE inside the graph.

How (measured, see the README's integer-only TFLite section): litert-torch converts the fp32
graph; ai-edge-quantizer's static full-integer recipe (`static_wi8_ai8`) quantizes every op of
that file from edgekit's calibration set; then two flatbuffer rewrites:
  - `recompose_degenerate_softmax` (before quantizing): litert-torch lowers a softmax over an
    axis of length 1 (LeViT's last attention: one query, one key) into REDUCE_MAX, SUB, EXP,
    DIV, which have no int8 kernels; it is SOFTMAX again.
  - `integer_io` (after): the QUANTIZE at the input and the DEQUANTIZE at the output go, the
    graph takes and gives int8 (or uint8: a requantizing QUANTIZE at each end) with the file's
    own scale and zero point.
PT2E through litert-torch annotates fewer ops (its int8 files keep HARD_SWISH, GELU and
activation × activation BATCH_MATMUL float: the float islands Vela rejects); writing the
flatbuffer from edgekit's integer IR would carry I-ViT's shift arithmetic that no TFLite kernel
implements. The arithmetic each op then runs is TFLite's own (ARITHMETIC below).

`integer_violations(path)` is the integer-only check: every float tensor or float-side op,
named.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.exporters.tflite_rewrite import _Model

from edgekit.errors import ExportError, UsageError, first_line

# The arithmetic of TFLite's integer kernels for the ops edgekit's models use (reference
# kernels; TFLite Micro and Vela implement the same semantics), and how it differs from the
# I-ViT shift arithmetic of edgekit's own integer graph (.onnx/.ekr).
ARITHMETIC: dict[str, str] = {
    "CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED":
        "int8 × int8 per-channel weights into int32, int32 bias, fixed-point multiplier "
        "(Q31 + shift) requantization — the same integer scheme as edgekit's Linear/Conv",
    "BATCH_MATMUL": "int8 × int8 activations into int32, one fixed-point multiplier",
    "SOFTMAX": "int8 in, int8 out: exp through a 256-entry LUT, fixed-point reciprocal of "
               "the row sum (I-ViT: shift-based exp2 approximation, uint8 out)",
    "HARD_SWISH": "int8 fixed-point: relu6(x + 3) / 6 with 16-bit intermediates "
                  "(edgekit: int32 products, one dyadic rescale)",
    "GELU (exported as x·LOGISTIC(1.702x), sigmoid_gelu)": "LOGISTIC by an int8 256-entry "
        "LUT, then an int8 MUL (I-ViT: ShiftGELU, the same sigmoid form, shift-based)",
    "MEAN / SUM": "int32 sum, fixed-point rescale (the same as edgekit's Mean)",
    "ADD / SUB / MUL": "operands rescaled to a shared 2^-20 grid, fixed-point output "
                       "multiplier (edgekit: two dyadic multipliers, one shift)",
    "RSQRT / SQUARED_DIFFERENCE (LayerNorm, decomposed)":
        "int8 RSQRT by LUT, squared difference in int32 (I-ViT: integer Newton square root "
        "inside one I-LayerNorm op)",
    "RESHAPE / TRANSPOSE / SLICE / STRIDED_SLICE / CONCATENATION / PAD":
        "int8 data movement; CONCATENATION requantizes inputs to the output scale",
    "AVERAGE_POOL_2D": "int32 window sums, rounded division by the window count",
}

FLOAT_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64", "BFLOAT16", "COMPLEX64", "COMPLEX128",
               "FLOAT8_E4M3FN", "FLOAT8_E5M2")
IO_TYPES = ("int8", "uint8")


class _Flatbuffer(_Model):
    """tflite_rewrite's loaded model (subgraph 0) with the graph queries and clean-ups these
    rewrites need; written back to the file it came from."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.path = path
        self.op_names = {v: k for k, v in vars(self.schema.BuiltinOperator).items()
                         if not k.startswith("_")}
        self.type_names = {v: k for k, v in vars(self.schema.TensorType).items()
                           if not k.startswith("_")}

    def write(self, path: Path | None = None) -> None:
        super().write(path or self.path)

    def op_name(self, op: Any) -> str:
        code = self.builtin_of(op)
        return str(self.op_names.get(code, f"op{code}"))

    def type_name(self, tensor: int) -> str:
        return str(self.type_names.get(self.sg.tensors[tensor].type, "?"))

    def producers(self) -> dict[int, int]:
        return {t: i for i, op in enumerate(self.sg.operators) for t in op.outputs}

    def consumers(self) -> Counter[int]:
        return Counter(t for op in self.sg.operators for t in op.inputs if t >= 0)

    def drop_dead_ops(self) -> int:
        """Remove ops none of whose outputs is read or a graph output; returns how many."""
        dropped = 0
        while True:
            used = self.consumers()
            keep = [op for op in self.sg.operators
                    if any(used[t] or t in self.sg.outputs for t in op.outputs)]
            if len(keep) == len(self.sg.operators):
                return dropped
            dropped += len(self.sg.operators) - len(keep)
            self.sg.operators = keep

    def drop_unused_tensors(self) -> int:
        """Remove tensors no op and no graph I/O references (their buffers stay, empty of
        meaning but harmless), renumbering every reference; returns how many."""
        sg = self.sg
        used = {t for op in sg.operators for t in [*op.inputs, *op.outputs] if t >= 0}
        used |= set(sg.inputs) | set(sg.outputs)
        order = [t for t in range(len(sg.tensors)) if t in used]
        if len(order) == len(sg.tensors):
            return 0
        remap = {old: new for new, old in enumerate(order)}
        dropped = len(sg.tensors) - len(order)
        sg.tensors = [sg.tensors[t] for t in order]
        for op in sg.operators:
            op.inputs = [remap[t] if t >= 0 else t for t in op.inputs]
            op.outputs = [remap[t] for t in op.outputs]
            if op.intermediates is not None and len(op.intermediates):
                op.intermediates = [remap[t] for t in op.intermediates if t in remap]
        sg.inputs = [remap[t] for t in sg.inputs]
        sg.outputs = [remap[t] for t in sg.outputs]
        for sig in self.model.signatureDefs or []:
            for item in [*(sig.inputs or []), *(sig.outputs or [])]:
                item.tensorIndex = remap[item.tensorIndex]
        return dropped

    def retarget_signatures(self, old: int, new: int) -> None:
        for sig in self.model.signatureDefs or []:
            for item in [*(sig.inputs or []), *(sig.outputs or [])]:
                if item.tensorIndex == old:
                    item.tensorIndex = new


def recompose_degenerate_softmax(path: Path) -> int:
    """DIV(EXP(SUB(x, …)), …) — litert-torch's lowering of a softmax it would not keep whole —
    becomes SOFTMAX(x) again (beta 1); the chain's other ops are dropped when nothing else reads
    them. Exact in float: softmax is that chain. Returns how many were recomposed."""
    fb = _Flatbuffer(path)
    ops_enum = fb.schema.BuiltinOperator
    producer = fb.producers()
    count = 0
    for position, op in enumerate(list(fb.sg.operators)):
        if fb.op_name(op) != "DIV":
            continue
        num = producer.get(op.inputs[0])
        if num is None or fb.op_name(fb.sg.operators[num]) != "EXP":
            continue
        sub = producer.get(fb.sg.operators[num].inputs[0])
        if sub is None or fb.op_name(fb.sg.operators[sub]) != "SUB":
            continue
        x = fb.sg.operators[sub].inputs[0]
        if list(fb.sg.tensors[x].shape) != list(fb.sg.tensors[op.outputs[0]].shape):
            continue
        softmax = fb.schema.OperatorT()
        softmax.opcodeIndex = fb.opcode(ops_enum.SOFTMAX)
        softmax.inputs, softmax.outputs = [x], list(op.outputs)
        softmax.builtinOptionsType = fb.schema.BuiltinOptions.SoftmaxOptions
        softmax.builtinOptions = fb.schema.SoftmaxOptionsT()
        softmax.builtinOptions.beta = 1.0
        fb.sg.operators[position] = softmax
        count += 1
    if count:
        fb.drop_dead_ops()
        fb.drop_unused_tensors()
        fb.write()
    return count


def integer_io(path: Path, io_type: str = "int8") -> list[str]:
    """Make the graph's float inputs/outputs integer: the boundary QUANTIZE (input) and
    DEQUANTIZE (output) ops go; for uint8 I/O a QUANTIZE (uint8 ↔ int8, zero point ± 128)
    takes their place. Returns what was rewritten."""
    if io_type not in IO_TYPES:
        raise UsageError(f"--io {io_type}: integer I/O is int8 or uint8")
    fb = _Flatbuffer(path)
    schema, sg = fb.schema, fb.sg
    done = []

    def uint8_twin(tensor: int, suffix: str) -> int:
        old = sg.tensors[tensor]
        new = schema.TensorT()
        new.shape, new.shapeSignature = old.shape, old.shapeSignature
        new.type, new.name = schema.TensorType.UINT8, fb.name(tensor) + suffix
        q = old.quantization
        new.quantization = schema.QuantizationParametersT()
        new.quantization.scale = list(q.scale)
        new.quantization.zeroPoint = [int(z) + 128 for z in q.zeroPoint]
        fb.model.buffers.append(schema.BufferT())
        new.buffer = len(fb.model.buffers) - 1
        sg.tensors.append(new)
        return len(sg.tensors) - 1

    for pos, index in enumerate(list(sg.inputs)):
        readers = [i for i, op in enumerate(sg.operators) if index in op.inputs]
        if (fb.type_name(index) == "FLOAT32" and len(readers) == 1
                and fb.op_name(sg.operators[readers[0]]) == "QUANTIZE"):
            quantize = sg.operators[readers[0]]
            if io_type == "int8":
                del sg.operators[readers[0]]
                new = quantize.outputs[0]
            else:
                new = uint8_twin(quantize.outputs[0], "_uint8")
                quantize.inputs = [new]
        elif fb.type_name(index) == "INT8" and io_type == "uint8":
            new = uint8_twin(index, "_uint8")
            sg.operators.insert(0, fb.op(schema.BuiltinOperator.QUANTIZE, [new], [index]))
        else:
            continue
        sg.inputs[pos] = new
        fb.retarget_signatures(index, new)
        done.append(f"input {pos}: {io_type}")
    for pos, index in enumerate(list(sg.outputs)):
        writer = fb.producers().get(index)
        if (fb.type_name(index) == "FLOAT32" and writer is not None
                and fb.op_name(sg.operators[writer]) == "DEQUANTIZE"):
            q_in = sg.operators[writer].inputs[0]
            if io_type == "int8":
                del sg.operators[writer]
                new = q_in
            else:
                new = uint8_twin(q_in, "_uint8")
                sg.operators[writer] = fb.op(schema.BuiltinOperator.QUANTIZE, [q_in], [new])
        elif fb.type_name(index) == "INT8" and io_type == "uint8":
            new = uint8_twin(index, "_uint8")
            sg.operators.append(fb.op(schema.BuiltinOperator.QUANTIZE, [index], [new]))
        else:
            continue
        sg.outputs[pos] = new
        fb.retarget_signatures(index, new)
        done.append(f"output {pos}: {io_type}")
    if done:
        fb.drop_unused_tensors()
        fb.write()
    return done


# The operator-code version an op needs once its tensors are int8 (TFLite's op_version rules:
# e.g. CONV_2D v3 = int8 with per-channel filters). ai-edge-quantizer keeps the float file's
# versions (mostly 1), and runtimes do read them: TFLite Micro computed a version-1 int8
# CONV_2D wrongly here (the Fashion-MNIST LeViT's second stem conv off by up to 146 in int8).
INT8_VERSIONS: dict[str, int] = {
    "CONV_2D": 3, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 4, "AVERAGE_POOL_2D": 2,
    "MAX_POOL_2D": 2, "ADD": 2, "SUB": 2, "MUL": 2, "SOFTMAX": 2, "LOGISTIC": 2, "TANH": 2,
    "TRANSPOSE": 2, "PAD": 2, "PADV2": 2, "SLICE": 2, "STRIDED_SLICE": 2, "CONCATENATION": 2,
    "MEAN": 2, "SUM": 2, "REDUCE_MAX": 2, "MAXIMUM": 2, "MINIMUM": 2, "BATCH_MATMUL": 2,
    "QUANTIZE": 2, "DEQUANTIZE": 2, "RSQRT": 2, "SQUARED_DIFFERENCE": 2, "GELU": 2,
    "LEAKY_RELU": 2, "RELU": 2, "RELU6": 2, "SPLIT": 2, "GATHER": 2, "PACK": 2, "UNPACK": 2,
    "RESIZE_BILINEAR": 2, "RESIZE_NEAREST_NEIGHBOR": 2,
}


def set_int8_op_versions(path: Path) -> dict[str, int]:
    """Raise the operator codes of ops that run on int8 tensors to the version their int8
    kernels carry (INT8_VERSIONS); returns {op: version} of what changed."""
    fb = _Flatbuffer(path)
    int8_codes = {fb.sg.operators[i].opcodeIndex for i, op in enumerate(fb.sg.operators)
                  if any(t >= 0 and fb.type_name(t) == "INT8" for t in op.inputs)}
    changed = {}
    for index in int8_codes:
        oc = fb.model.operatorCodes[index]
        name = str(fb.op_names.get(int(fb.fbu.get_builtin_code_from_operator_code(oc)), ""))
        want = INT8_VERSIONS.get(name, 1)
        if oc.version < want:
            oc.version = want
            changed[name] = want
    if changed:
        fb.write()
    return changed


def batch1_scalar_elementwise(path: Path) -> int:
    """MUL/ADD/SUB of a 4-D activation with a batch above 1 and a scalar constant (MobileViT's
    attention scale over its patch batches) crash Vela 5.2 for Ethos-U55/U65 (SIGSEGV; U85 and
    every TFLite runtime are fine): the activation is reshaped to [1, N·H, W, C] around the op
    (exact: the op is elementwise). Returns how many ops were rewritten."""
    import copy

    fb = _Flatbuffer(path)
    schema, sg = fb.schema, fb.sg

    def twin(t: int, shape: list[int]) -> int:
        new = schema.TensorT()
        new.shape, new.type = list(shape), sg.tensors[t].type
        new.name = fb.name(t) + "_batch1"
        new.quantization = copy.deepcopy(sg.tensors[t].quantization)
        fb.model.buffers.append(schema.BufferT())
        new.buffer = len(fb.model.buffers) - 1
        sg.tensors.append(new)
        return len(sg.tensors) - 1

    def shape_constant(shape: list[int]) -> int:
        new = schema.TensorT()
        new.shape, new.type = [len(shape)], schema.TensorType.INT32
        new.name = f"edgekit_batch1_shape_{len(sg.tensors)}"
        buf = schema.BufferT()
        buf.data = np.asarray(shape, dtype="<i4").tobytes()
        fb.model.buffers.append(buf)
        new.buffer = len(fb.model.buffers) - 1
        sg.tensors.append(new)
        return len(sg.tensors) - 1

    ops, rewritten = [], 0
    reshape = schema.BuiltinOperator.RESHAPE
    for op in sg.operators:
        out = op.outputs[0] if len(op.outputs) == 1 else -1
        shape = list(sg.tensors[out].shape) if out >= 0 else []
        inputs = [t for t in op.inputs if t >= 0]
        activations = [t for t in inputs if not fb.is_constant(t)]
        if (fb.op_name(op) not in ("MUL", "ADD", "SUB") or len(shape) != 4 or shape[0] <= 1
                or len(activations) != 1
                or list(sg.tensors[activations[0]].shape) != shape
                or any(len(sg.tensors[t].shape) > 0 for t in inputs if t not in activations)):
            ops.append(op)
            continue
        flat = [1, shape[0] * shape[1], shape[2], shape[3]]
        x, x1, y1 = activations[0], twin(activations[0], flat), twin(out, flat)
        ops.append(fb.op(reshape, [x, shape_constant(flat)], [x1]))
        op.inputs, op.outputs = [x1 if t == x else t for t in op.inputs], [y1]
        ops.append(op)
        ops.append(fb.op(reshape, [y1, shape_constant(shape)], [out]))
        rewritten += 1
    if rewritten:
        sg.operators = ops
        fb.write()
    return rewritten


def integer_violations(path: Path) -> list[str]:
    """Every float tensor an op reads or writes (constants included: an NPU has no float
    unit), and every QUANTIZE/DEQUANTIZE with a float side, each named with its op:
    "OP #index: TENSOR (dtype)". Empty: the file is integer-only."""
    fb = _Flatbuffer(path)
    bad = []
    for i, op in enumerate(fb.sg.operators):
        name = fb.op_name(op)
        for t in [*op.inputs, *op.outputs]:
            if t >= 0 and fb.type_name(t) in FLOAT_TYPES:
                bad.append(f"{name} #{i}: {fb.name(t)} ({fb.type_name(t).lower()})")
    for t in [*fb.sg.inputs, *fb.sg.outputs]:
        if fb.type_name(t) in FLOAT_TYPES:
            bad.append(f"graph I/O: {fb.name(t)} ({fb.type_name(t).lower()})")
    return sorted(set(bad))


def float_ops(path: Path) -> list[str]:
    """The op types that read or write a float tensor (what a user has to change): the
    QUANTIZE/DEQUANTIZE around them are named only when nothing else is float."""
    fb = _Flatbuffer(path)
    found = {fb.op_name(op) for op in fb.sg.operators
             if any(t >= 0 and fb.type_name(t) in FLOAT_TYPES for t in [*op.inputs, *op.outputs])}
    return sorted(found - {"QUANTIZE", "DEQUANTIZE"} or found)


def op_histogram(path: Path) -> dict[str, int]:
    fb = _Flatbuffer(path)
    return dict(Counter(fb.op_name(op) for op in fb.sg.operators).most_common())


def _calibration_feed(fp32: Path, samples: np.ndarray) -> tuple[str, dict[str, Any]]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(fp32))
    signatures = interp.get_signature_list()
    if len(signatures) != 1:
        raise ExportError(f"the fp32 file has {len(signatures)} signatures; one is expected")
    key, sig = next(iter(signatures.items()))
    (name,) = sig["inputs"]
    return key, {key: [{name: samples[i:i + 1].astype(np.float32)}
                       for i in range(len(samples))]}


# Activation ranges from the calibration set. ai-edge-quantizer's own calibration keeps the
# extremes over every sample ("minmax"); "percentile" (the default) calibrates each sample alone
# and takes the 10th percentile of the per-sample minima and the 90th of the maxima, so one
# outlier image does not stretch a range for all. Measured on the Fashion-MNIST LeViT, 200 test
# images vs fp32: cosine mean 0.9911 / min 0.863 (minmax) vs 0.9981 / 0.970 (percentile).
RANGE_METHODS = ("percentile", "minmax")
PERCENTILE = 90.0


def _ranges(qt: Any, key: str, feed: list[dict[str, Any]], method: str) -> dict[str, Any]:
    if method == "minmax":
        return dict(qt.calibrate({key: feed}))
    import copy

    from ai_edge_quantizer import calibrator

    calib = calibrator.Calibrator(qt._float_model_buffer)  # noqa: SLF001 - pinned 0.10.0
    per_sample = []
    for sample in feed:
        calib.reset_model_qsvs()
        calib.calibrate({key: [sample]}, qt._recipe_manager)  # noqa: SLF001
        per_sample.append(copy.deepcopy(calib.get_model_qsvs()))
    merged = {}
    for name, first in per_sample[0].items():
        if "min" not in first or "max" not in first:
            merged[name] = first
            continue
        mins = np.stack([np.asarray(p[name]["min"]) for p in per_sample])
        maxs = np.stack([np.asarray(p[name]["max"]) for p in per_sample])
        merged[name] = {**first, "min": np.percentile(mins, 100 - PERCENTILE, axis=0),
                        "max": np.percentile(maxs, PERCENTILE, axis=0)}
    return merged


def quantize_full_integer(fp32: Path, out: Path, samples: np.ndarray, io_type: str = "int8",
                          method: str = "percentile") -> dict[str, Any]:
    """fp32 .tflite → full-integer .tflite at `out`; raises ExportError naming any op left
    float. Returns the details the manifest records."""
    from ai_edge_quantizer import quantizer, recipe

    if method not in RANGE_METHODS:
        raise UsageError(f"--calib-method {method} is not available for full-integer TFLite",
                         hint=f"use one of: {', '.join(RANGE_METHODS)} (or auto)")
    work = Path(tempfile.mkdtemp(prefix="edgekit-int-"))
    staged = work / "fp32.tflite"
    staged.write_bytes(fp32.read_bytes())
    recomposed = recompose_degenerate_softmax(staged)
    key, feed = _calibration_feed(staged, samples)
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            qt = quantizer.Quantizer(str(staged))
            qt.load_quantization_recipe(recipe.static_wi8_ai8())
            result = qt.quantize(_ranges(qt, key, feed[key], method))
            result.export_model(str(out), overwrite=True)
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        raise ExportError(f"ai-edge-quantizer could not quantize the model: "
                          f"{type(exc).__name__}: {first_line(exc)}",
                          hint="--debug shows the quantizer's report") from exc
    finally:
        staged.unlink(missing_ok=True)
        work.rmdir()
    boundary = integer_io(out, io_type)
    batch1 = batch1_scalar_elementwise(out)
    versions = set_int8_op_versions(out)
    left = float_ops(out)
    if left:
        raise ExportError(
            "no integer form for: " + ", ".join(left) + " (ai-edge-quantizer left these ops "
            "float; NPU and microcontroller toolchains need every op integer)",
            hint="replace the op in the model (edgekit check MODEL --to tflite lists the "
                 "graph's ops), or export --quant int8 for a CPU with float islands")
    return {"method": "litert-torch fp32 → ai-edge-quantizer static_wi8_ai8 (full integer)",
            "ranges": method if method == "minmax" else
            f"per-sample extremes, percentiles {100 - PERCENTILE:g}/{PERCENTILE:g}",
            "recomposed_softmax": recomposed, "integer_io": boundary, "io": io_type,
            "op_versions": versions, "batch1_elementwise": batch1, "arithmetic": ARITHMETIC,
            "ops": op_histogram(out)}


def sigmoid_gelu(model: Any) -> int:
    """Replace every nn.GELU of `model` (in place) by x·σ(1.702·x): TFLite Micro has no GELU
    kernel (LiteRT and Vela have an int8 LUT), and LOGISTIC + MUL run everywhere. The two differ
    by at most 0.020 (at |x| ≈ 2.4), about half an int8 step of the activations they feed.
    Returns how many were replaced."""
    import torch

    class SigmoidGELU(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * torch.sigmoid(1.702 * x)

    swapped = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.GELU):
                setattr(parent, name, SigmoidGELU())
                swapped += 1
    return swapped


def export_through_fp32(model: Any, example: Any, samples: np.ndarray | None, options: Any,
                        out_dir: Path, quantize: Any) -> tuple[Any, dict[str, Any]]:
    """litert-torch's fp32 file (same layout options as --quant fp32) in a temp dir, then
    `quantize(fp32_path, out_path, samples)` writes out_dir's model; the ExportResult is
    described from the written file (its I/O types and quantization). Returns (result,
    quantize's details)."""
    import dataclasses

    from edgekit.exporters.tflite import TFLiteExporter

    from edgekit.artifact import TensorSpec

    exporter = TFLiteExporter()
    out = out_dir / exporter.filename
    with tempfile.TemporaryDirectory(prefix="edgekit-fp32-") as tmp:
        fp32 = exporter.export(model, example, dataclasses.replace(options, converter_kwargs={}),
                               Path(tmp))
        if samples is not None and options.layout.upper() == "NHWC":
            samples = np.ascontiguousarray(samples.transpose(0, 2, 3, 1))
        details = quantize(Path(tmp) / fp32.file, out, samples)
    info = exporter.describe(out)
    layout = options.layout.upper()
    return dataclasses.replace(
        fp32,
        inputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], layout,
                                t.get("quantization")) for t in info["inputs"]),
        outputs=tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], None,
                                 t.get("quantization")) for t in info["outputs"]),
        versions={**fp32.versions, "ai-edge-quantizer": _version("ai-edge-quantizer")},
        details={**fp32.details, "ops": info["ops"], "float_io_boundary": [],
                 "float_islands": {}, "delegation": _delegation(out)}), details


def export_int_only(model: Any, example: Any, samples: np.ndarray, options: Any, out_dir: Path,
                    io_type: str = "int8", method: str = "percentile") -> Any:
    """--to tflite --quant int-only: the fp32 file through litert-torch (GELU as sigmoid_gelu),
    then quantize_full_integer into out_dir. Returns the ExportResult."""
    import dataclasses

    gelus = sigmoid_gelu(model)
    result, details = export_through_fp32(
        model, example, samples, options, out_dir,
        lambda fp32, out, feed: quantize_full_integer(fp32, out, feed, io_type, method))
    return dataclasses.replace(result, details={
        **result.details, "integer_only": {**details, "gelu_as_sigmoid": gelus}})


def _version(dist: str) -> str | None:
    from edgekit.runtime import dist_version

    return dist_version(dist)


def _delegation(path: Path) -> dict[str, Any]:
    from edgekit.exporters.tflite import delegation

    return delegation(path)
