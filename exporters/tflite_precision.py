"""TFLite (LiteRT) fp16 / w8 / w8a16 (`--to tflite --quant fp16|w8|w8a16`): litert-torch's fp32
file through an ai-edge-quantizer recipe, fp32 inputs and outputs kept.

- fp16: ai-edge-quantizer's FLOAT_CASTING weight-only config — the weights of FULLY_CONNECTED,
  CONV_2D, DEPTHWISE_CONV_2D (TRANSPOSE_CONV, EMBEDDING_LOOKUP) stored FLOAT16, each read through
  a DEQUANTIZE (TFLite's "float16 quantization" layout). Every other float constant (biases,
  LayerScale / norm / attention-bias operands of MUL, ADD, SUB) stays FLOAT32: the details list
  them. Compute: fp32 in XNNPACK (XNNPACK_FP16 below).
- w8: int8 per-channel weights, float activations — W8_RECIPE (weight-only: int8 weights +
  DEQUANTIZE, fp32 compute; why not dynamic range: the comment there).
- w8a16: `static_wi8_ai16` (16x8: int16 activations, int8 per-channel weights, int64 biases),
  calibrated on the samples with the full-integer path's percentile ranges (tflite_integer's
  `_ranges`), the graph's INPUT/OUTPUT left float (a QUANTIZE / DEQUANTIZE inside the file).
  Ops outside ai-edge-quantizer's 16x8 op list (here HARD_SWISH, and SQUARED_DIFFERENCE from
  a decomposed LayerNorm) stay float islands between a DEQUANTIZE and a QUANTIZE: the details
  list them. A softmax over one key that litert-torch lowered to REDUCE_MAX/SUB/EXP/DIV is
  recomposed first (tflite_integer's rewrite), else EXP and REDUCE_MAX stay float. TFLite's
  builtin reference kernels run the int16 ops — XNNPACK has no int16 path and takes only the
  float islands, so on a CPU this file is 10-30× slower than fp32 (measured below); it is for
  16x8 accelerators.

Measured with ai-edge-litert 2.3.0 + XNNPACK on x86 (timm random-init weights; fmnist_levit is
trained): the minimum per-sample logit cosine vs the fp32 .tflite over 8 golden inputs, and the
file size in MB. w8a16 calibrated on 64 photos (fmnist_levit: 64 Fashion-MNIST images).

    model               fp32   fp16          w8 weight-only  w8 dynamic     w8a16
    levit_128s          33.0   1.00000 17.6  .99997 10.1     .99993 10.1    .99997  9.5
    efficientformer_l1  49.2   1.00000 24.8  .99994 12.8     .99990 12.8    .99994 13.0
    fastvit_t8          16.3   1.00000  8.4  .99982  4.6     .99921  4.6    .99985  4.8
    fmnist_levit         2.1   1.00000  1.1  .99990  0.66    .99884  0.65   .99948  0.72

Host latency, 1 thread, ms (a shared 2-core machine, ±20%), fp32 / fp16 / w8 / w8 dynamic /
w8a16: levit_128s 21 / 18 / 21 / 19 / 342; efficientformer_l1 72 / 76 / 69 / 67 / 1567;
fastvit_t8 105 / 96 / 96 / 80 / 1286.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.exporters.tflite_integer import (
    PERCENTILE,
    RANGE_METHODS,
    _calibration_feed,
    _Flatbuffer,
    _ranges,
    export_through_fp32,
    float_ops,
    op_histogram,
    recompose_degenerate_softmax,
)

from edgekit.errors import ExportError, UsageError, first_line

MODES = ("fp16", "w8", "w8a16")

# w8 default. Both int8-weight recipes were measured on levit_128s, efficientformer_l1,
# fastvit_t8 and the trained fmnist_levit (table in the module docstring):
# - weight_only_wi8_afp32 (int8 weights + DEQUANTIZE, fp32 compute) meets the w8 bar (per-sample
#   logit cosine >= 0.999 vs fp32) on all four, worst 0.99982 (fastvit_t8).
# - dynamic_wi8_afp32 (int8 weights, activations quantized per inference: XNNPACK's qd8 GEMMs)
#   does not: 0.99884 on the one trained model (fmnist_levit), 0.99921 on fastvit_t8; and XNNPACK
#   has no dynamic-range DEPTHWISE_CONV_2D, so FastViT's 40 depthwise convs fall back to TFLite's
#   hybrid kernels (26 delegate partitions instead of 1). Its gains: weights stay int8 in memory
#   (efficientformer_l1 RSS +34 MB vs +115 MB) and int8 GEMMs on ARM; host latency was within
#   noise of fp32 for both.
# Weight-only's cost: XNNPACK unpacks the int8 weights to fp32 when it loads the file, so it
# saves file size, not RAM or time. `w8_recipe="dynamic_wi8_afp32"` picks the other one.
W8_RECIPE = "weight_only_wi8_afp32"
W8_RECIPES = ("weight_only_wi8_afp32", "dynamic_wi8_afp32")
W8_WHY = ("weight-only meets per-sample logit cosine >= 0.999 on levit_128s, efficientformer_l1, "
          "fastvit_t8 and the trained fmnist_levit (worst 0.99982); dynamic range missed it "
          "(fmnist_levit 0.99884, fastvit_t8 0.99921) and leaves depthwise convs outside "
          "XNNPACK")

# How XNNPACK (ai-edge-litert's default delegate) runs the fp16 file.
XNNPACK_FP16 = {
    "compute": "fp32",
    "finding": "XNNPACK turns each DEQUANTIZE of a constant fp16 weight into an fp32 copy when "
               "the delegate is prepared and runs its fp32 kernels; fp16 arithmetic only when "
               "the CPU has ARMv8.2 FP16 arithmetic AND the file carries "
               "'reduced_precision_support' metadata (not written here), or when the app "
               "creates the delegate with TFLITE_XNNPACK_DELEGATE_FLAG_FORCE_FP16",
    "evidence": [
        "TFLite XNNPACK delegate README, 'Floating-Point (IEEE FP16) Operators': half-precision "
        "inference is enabled only on FP16-capable hardware with the model's "
        "reduced_precision_support metadata (or the FORCE_FP16 flag); otherwise 'XNNPACK will "
        "perform model inference with FP32 calculations'",
        "xnnpack_delegate.cc PrepareOpsToDelegate: DEQUANTIZE nodes with a static FLOAT16 "
        "input and FLOAT32 output become 'static unpack' nodes whose outputs are unpacked to "
        "fp32 in DelegatePrepare",
        "measured (ai-edge-litert 2.3.0, x86): the fp16 file under XNNPACK vs TFLite's builtin "
        "fp32 kernels differs by <= 1.1e-6 of the logit range, as much as the fp32 file does "
        "(8e-7), while the fp16 rounding of the weights alone moves the logits by 3e-4..7e-4; "
        "resident memory after loading efficientformer_l1: fp16 file +82 MB, fp32 +103 MB, "
        "int8 dynamic +34 MB (the fp16 weights are held as fp32)",
    ],
}
XNNPACK_W8 = {
    "weight_only_wi8_afp32": "XNNPACK unpacks the int8 weights to fp32 at load (like fp16) and "
                             "runs fp32 kernels: smaller file, same RAM and speed as fp32 "
                             "(efficientformer_l1 resident memory after load: +115 MB, "
                             "fp32 +103 MB, dynamic range +34 MB)",
    "dynamic_wi8_afp32": "XNNPACK runs FULLY_CONNECTED / CONV_2D as qd8 GEMMs (activations "
                         "quantized per inference, int8 weights kept in memory); "
                         "dynamic-range DEPTHWISE_CONV_2D stays on TFLite's hybrid kernel",
}
XNNPACK_W8A16 = ("XNNPACK has no int16 kernels: TFLite's builtin (reference) 16x8 kernels run "
                 "every int16 op; XNNPACK takes only the float islands")

# The weight input of the ops ai-edge-quantizer quantizes weights of.
WEIGHT_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV",
              "BATCH_MATMUL", "EMBEDDING_LOOKUP")


def _fp16_recipe() -> Any:
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    rm = recipe_manager.RecipeManager()
    rm.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                              num_bits=16,
                              algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING)
    return rm.get_quantization_recipe()


def _w8a16_recipe() -> Any:
    """static_wi8_ai16 with the graph's INPUT and OUTPUT left float: the quantizer then puts
    the QUANTIZE / DEQUANTIZE inside the file (fp32 I/O) instead of int16 I/O."""
    from ai_edge_quantizer import algorithm_manager, qtyping, recipe_manager

    ops, algorithms = qtyping.TFLOperationName, algorithm_manager.AlgorithmName
    rm = recipe_manager.RecipeManager()
    rm.add_static_config(regex=".*", operation_name=ops.ALL_SUPPORTED, activation_num_bits=16,
                         weight_num_bits=8)
    for boundary in (ops.INPUT, ops.OUTPUT):
        rm.add_quantization_config(".*", boundary, algorithm_key=algorithms.NO_QUANTIZE)
    return rm.get_quantization_recipe()


def _recipe(mode: str, w8_recipe: str) -> tuple[str, Any]:
    from ai_edge_quantizer import recipe

    if mode == "fp16":
        return "weight-only FLOAT_CASTING (fp16 weights)", _fp16_recipe()
    if mode == "w8":
        return w8_recipe, getattr(recipe, w8_recipe)()
    return "static_wi8_ai16 (16x8), float INPUT/OUTPUT", _w8a16_recipe()


def _buffer_bytes(fb: _Flatbuffer, tensor: int) -> int:
    buf = fb.model.buffers[fb.sg.tensors[tensor].buffer]
    return len(buf.data) if buf.data is not None else int(getattr(buf, "size", 0) or 0)


def weight_types(path: Path) -> dict[str, dict[str, int]]:
    """{op: {stored type of its weight: count}} for the weight-bearing ops, looking through a
    DEQUANTIZE to the constant it reads (a FLOAT16 or INT8 weight of a weight-only file)."""
    fb = _Flatbuffer(path)
    producer = fb.producers()
    found: dict[str, Counter[str]] = {}
    for op in fb.sg.operators:
        name = fb.op_name(op)
        if name not in WEIGHT_OPS or len(op.inputs) < 2 or op.inputs[1] < 0:
            continue
        w = op.inputs[1]
        source = producer.get(w)
        if source is not None and fb.op_name(fb.sg.operators[source]) == "DEQUANTIZE":
            w = fb.sg.operators[source].inputs[0]
        if fb.is_constant(w):
            found.setdefault(name, Counter())[fb.type_name(w)] += 1
    return {op: dict(c.most_common()) for op, c in sorted(found.items())}


def fp32_constants(path: Path) -> dict[str, dict[str, int]]:
    """{op: {"tensors": n, "bytes": b}}: the FLOAT32 constants ops read directly (what the
    recipe left fp32: biases, elementwise operands, weights of ops it cannot quantize)."""
    fb = _Flatbuffer(path)
    seen: set[int] = set()
    found: dict[str, dict[str, int]] = {}
    for op in fb.sg.operators:
        for t in op.inputs:
            if t < 0 or t in seen or fb.type_name(t) != "FLOAT32" or not fb.is_constant(t):
                continue
            seen.add(t)
            entry = found.setdefault(fb.op_name(op), {"tensors": 0, "bytes": 0})
            entry["tensors"] += 1
            entry["bytes"] += _buffer_bytes(fb, t)
    return dict(sorted(found.items()))


def _io_types(path: Path) -> dict[str, list[str]]:
    fb = _Flatbuffer(path)
    return {"inputs": [fb.type_name(t).lower() for t in fb.sg.inputs],
            "outputs": [fb.type_name(t).lower() for t in fb.sg.outputs]}


def _metadata(path: Path) -> list[str]:
    fb = _Flatbuffer(path)
    return sorted(m.name.decode() if isinstance(m.name, bytes) else str(m.name)
                  for m in fb.model.metadata or [])


def _activation_types(path: Path) -> dict[str, int]:
    """Stored types of the op outputs (activations), counted."""
    fb = _Flatbuffer(path)
    return dict(Counter(fb.type_name(t).lower() for op in fb.sg.operators
                        for t in op.outputs).most_common())


def quantize_tflite(fp32: Path, out: Path, mode: str, samples: np.ndarray | None = None,
                    on_step: Callable[[str], None] = lambda s: None,
                    method: str = "percentile", *, w8_recipe: str = W8_RECIPE
                    ) -> dict[str, Any]:
    """fp32 .tflite → `mode` ("fp16", "w8", "w8a16") .tflite at `out`, fp32 I/O kept. w8a16
    calibrates on `samples` (float32 [N, …] in the file's input layout) with `method`'s ranges;
    fp16 and w8 need no samples. Raises UsageError on a bad mode/method or missing samples,
    ExportError when ai-edge-quantizer fails or quantized nothing. Returns the details the
    manifest records (JSON-serializable)."""
    from ai_edge_quantizer import quantizer

    if mode not in MODES:
        raise UsageError(f"--quant {mode} is not a TFLite precision mode",
                         hint=f"use one of: {', '.join(MODES)} (int8 / int-only have their own "
                              "paths)")
    if mode == "w8" and w8_recipe not in W8_RECIPES:
        raise UsageError(f"w8 recipe {w8_recipe} is not available",
                         hint=f"use one of: {', '.join(W8_RECIPES)}")
    if mode == "w8a16":
        if method not in RANGE_METHODS:
            raise UsageError(f"--calib-method {method} is not available for TFLite w8a16",
                             hint=f"use one of: {', '.join(RANGE_METHODS)} (or auto)")
        if samples is None or len(samples) == 0:
            raise UsageError("TFLite w8a16 needs calibration samples (int16 activation ranges)",
                             hint="pass --calib DIR or a built-in set (photos, fmnist)")
    how, recipe = _recipe(mode, w8_recipe)
    work = Path(tempfile.mkdtemp(prefix=f"edgekit-{mode}-"))
    staged = work / "fp32.tflite"
    staged.write_bytes(fp32.read_bytes())
    details: dict[str, Any] = {"mode": mode, "quantizer_recipe": how}
    log = io.StringIO()
    try:
        if mode == "w8a16":
            # a softmax over one key lowered to REDUCE_MAX/SUB/EXP/DIV: no int16 EXP kernel
            details["recomposed_softmax"] = recompose_degenerate_softmax(staged)
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
                warnings.catch_warnings():
            # its calibration interpreter keeps every tensor (experimental_preserve_all_…)
            warnings.simplefilter("ignore", UserWarning)
            qt = quantizer.Quantizer(str(staged))
            qt.load_quantization_recipe(recipe)
            if mode == "w8a16":
                assert samples is not None
                key, feed = _calibration_feed(staged, samples)
                on_step(f"calibrating int16 activation ranges on {len(samples)} samples "
                        f"({method})")
                result = qt.quantize(_ranges(qt, key, feed[key], method))
            else:
                on_step(f"quantizing weights ({how})")
                result = qt.quantize()
            result.export_model(str(out), overwrite=True)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
        raise ExportError(f"ai-edge-quantizer could not quantize the model to {mode}: "
                          f"{type(exc).__name__}: {first_line(exc)}",
                          hint="--debug shows the quantizer's report; --quant fp32 exports "
                               "the float file") from exc
    finally:
        staged.unlink(missing_ok=True)
        work.rmdir()

    on_step(f"checking the {mode} file")
    boundary = _io_types(out)
    if any(t != "float32" for t in [*boundary["inputs"], *boundary["outputs"]]):
        raise ExportError(f"the {mode} file's inputs/outputs are {boundary}, not float32",
                          path=out, hint="report this: the recipe should keep fp32 I/O")
    weights = weight_types(out)
    stored = Counter(t for per_op in weights.values() for t in per_op)
    want = {"fp16": "FLOAT16", "w8": "INT8", "w8a16": "INT8"}[mode]
    if not stored[want]:
        raise ExportError(f"ai-edge-quantizer quantized no weight to {want.lower()} (weights: "
                          f"{weights or 'none'}); the file would be the fp32 model",
                          hint="the model needs FULLY_CONNECTED / CONV_2D weights for this "
                               "mode; export --quant fp32")
    details.update({"io": boundary, "weights": weights, "fp32_constants": fp32_constants(out),
                    "fp32_size_bytes": fp32.stat().st_size, "size_bytes": out.stat().st_size})
    if mode == "fp16":
        metadata = _metadata(out)
        details["fp32_constants_note"] = (
            "ai-edge-quantizer's FLOAT_CASTING casts only the weights of FULLY_CONNECTED, "
            "CONV_2D, DEPTHWISE_CONV_2D, TRANSPOSE_CONV and EMBEDDING_LOOKUP; these stay fp32")
        details["xnnpack"] = {**XNNPACK_FP16,
                              "reduced_precision_support": "reduced_precision_support"
                              in metadata}
    elif mode == "w8":
        details["why"] = W8_WHY if w8_recipe == W8_RECIPE else "chosen by the caller"
        details["xnnpack"] = XNNPACK_W8[w8_recipe]
    else:
        assert samples is not None
        activations = _activation_types(out)
        left = float_ops(out)
        if not activations.get("int16"):
            raise ExportError("ai-edge-quantizer left every activation float in the w8a16 "
                              "file", path=out, hint="--debug shows the quantizer's report")
        # percentile over minmax for int16 too (min cosine, same 64 samples): fmnist_levit
        # .99948 vs .98459, fastvit_t8 .99985 vs .99633, tiny_hybrid .9995 vs .9904
        details.update({
            "ranges": method if method == "minmax" else
            f"per-sample extremes, percentiles {100 - PERCENTILE:g}/{PERCENTILE:g}",
            "calibration_samples": int(len(samples)), "activations": activations,
            # ops outside the 16x8 op list: DEQUANTIZE → float op → QUANTIZE
            "float_ops": [] if set(left) <= {"QUANTIZE", "DEQUANTIZE"} else left,
            "xnnpack": XNNPACK_W8A16})
    details["ops"] = op_histogram(out)
    return details


def export_precision(model: Any, example: Any, samples: np.ndarray | None, options: Any,
                     out_dir: Path, mode: str, on_step: Callable[[str], None] = lambda s: None,
                     method: str = "percentile") -> Any:
    """--to tflite --quant fp16|w8|w8a16: the fp32 file through litert-torch (same layout
    options as --quant fp32) into a temp dir, then quantize_tflite into out_dir. Returns the
    ExportResult; its details["precision"] is quantize_tflite's record."""

    if mode not in MODES:  # before the minute litert-torch takes
        raise UsageError(f"--quant {mode} is not a TFLite precision mode",
                         hint=f"use one of: {', '.join(MODES)}")
    on_step("converting the fp32 TFLite file (litert-torch)")
    result, details = export_through_fp32(
        model, example, samples, options, out_dir,
        lambda fp32, out, feed: quantize_tflite(fp32, out, mode, feed, on_step, method))
    return dataclasses.replace(result, details={**result.details, "precision": details})
