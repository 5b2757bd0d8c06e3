"""ONNX Runtime static int8: calibrate once (ranges cached), quantize with per-channel weights.

Why not `quantize_static` defaults: with every op quantized (QDQ around LayerNorm/GELU/softmax
inputs, int8 attention matmuls) ORT's CPU int8 of EfficientFormer-L1 / LeViT-128S / FastViT-T8
ran 1.2-2.2x *slower* than fp32 here. The default plan quantizes what ORT fuses into real int8
kernels (Conv, Gemm, MatMul with a constant B: QLinearConv / MatMulIntegerToFloat / QGemm), with
u8 activations x s8 per-channel weights (the VNNI path on x86, dot-product path on ARM), and
leaves the rest float. `bench/int8_speed.py` measures the alternatives.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.calibration import CalibrationSet
from edgekit.errors import ExportError, UsageError
from edgekit.quant.config import QuantConfig
from edgekit.quant.ranges import RangeFinding, array_range, classify_range, safe_range, summarize
from edgekit.quant.sensitivity import choose_float_sites
from edgekit.validate import logit_cosine

ORT_OPS_OF_KIND = {
    "conv": ("Conv",), "linear": ("Gemm", "MatMul"), "matmul": ("MatMul",), "add": ("Add",),
    "mul": ("Mul",), "softmax": ("Softmax",), "concat": ("Concat",),
    "pool": ("AveragePool", "GlobalAveragePool", "MaxPool"), "gelu": ("Gelu",),
    "dwconv": (),  # grouped Conv nodes, picked by attribute (_nodes_of_kind)
}
# What `--quant int8` quantizes in ORT by default, and the alternatives the speed bench compares.
ORT_PLANS: dict[str, dict[str, Any]] = {
    "fused": {"format": "QDQ", "ops": ("Conv", "Gemm", "MatMul"), "const_b_only": True,
              "activation": "QUInt8"},
    "fused-qoperator": {"format": "QOperator", "ops": ("Conv", "Gemm", "MatMul"),
                        "const_b_only": True, "activation": "QUInt8"},
    "ort-default": {"format": "QDQ", "ops": None, "const_b_only": False, "activation": "QInt8"},
    # `--quant w8a16`: int16 activations x int8 per-channel weights on every op ORT's QDQ
    # quantizer handles. ONNX Q/DQ take 16-bit types from opset 21 on: ORT 1.31.1's
    # quantize_static converts the model to opset 21 by itself (onnx.version_converter; the
    # `com.microsoft` Q/DQ of UseQDQContribOps are not needed). ORT's CPU EP has no int16
    # kernels: it computes these ops in float between int16 Q/DQ (accuracy as on an NPU with a
    # 16-bit activation path, not speed).
    # `--calib-method auto` is minmax here: 16 bits resolve the full range, and percentile
    # clipping cost FastViT-T8 (timm, random weights) min logit cosine 0.9979 vs 0.9999.
    "w8a16": {"format": "QDQ", "ops": None, "const_b_only": False, "activation": "QInt16",
              "auto_method": "minmax"},
}
DEFAULT_ORT_PLAN = "fused"


def u8s8_saturates_here() -> bool:
    """Whether ONNX Runtime's u8×s8 int8 kernels saturate on this CPU: on x86-64 without
    AVX-VNNI they multiply-add pairs with VPMADDUBSW into int16, which overflows for large
    products (measured here on an AVX2 AMD EPYC: fmnist_levit int8 logit cosine 0.93 instead of
    > 0.99). ORT's documented remedy is `reduce_range` (7-bit weights). ARM NEON and VNNI
    kernels are exact, so full 8-bit weights are kept where the validating host has them."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return True  # unknown x86: the safe choice
    return not any(f in flags for f in ("avx512_vnni", "avx_vnni"))
_ORT_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


@dataclass
class OrtQuantResult:
    plan: str
    method: str
    excluded_nodes: list[str] = field(default_factory=list)  # by the sensitivity analysis
    forced_nodes: list[str] = field(default_factory=list)  # by kind (--keep-float, speed)
    sites: int = 0  # quantizable nodes, forced ones included
    cosine_all_int8: float | None = None
    cosine_final: float | None = None
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    reduce_range: bool = False  # 7-bit weights (see u8s8_saturates_here)
    findings: list[RangeFinding] = field(default_factory=list)  # degenerate ranges
    float_reasons: dict[str, str] = field(default_factory=dict)  # node -> why it is float
    # `mixed="int16"`: the sites the sensitivity analysis picked get int16 activations instead
    # of leaving quantization (excluded_nodes then holds none of them)
    mixed: str = "float"
    int16_nodes: list[str] = field(default_factory=list)
    int16_reasons: dict[str, str] = field(default_factory=dict)  # node -> why it is int16

    def details(self) -> dict[str, Any]:
        plan = ORT_PLANS[self.plan]
        return {"plan": self.plan, "quant_format": plan["format"],
                "op_types": list(plan["ops"]) if plan["ops"] else "all",
                "activation_type": plan["activation"],
                "weight_type": "QInt8 per-channel" + (", 7-bit (reduce_range: this x86 host "
                                                      "has no VNNI, ORT u8s8 would saturate)"
                                                      if self.reduce_range else ""),
                "reduce_range": self.reduce_range,
                "calib_method": self.method, "sites": self.sites,
                "float_sites": [*self.forced_nodes, *self.excluded_nodes],
                "holdout_cosine_all_int8": self.cosine_all_int8,
                "holdout_cosine": self.cosine_final, "sensitivity_top": self.sensitivity[:10],
                "float_reasons": self.float_reasons, "ranges": summarize(self.findings),
                **({"mixed": self.mixed, "int16_sites": self.int16_nodes,
                    "int16_reasons": self.int16_reasons} if self.mixed != "float" else {})}


class _Reader:
    def __init__(self, input_name: str, samples: np.ndarray, batch: int) -> None:
        self._items = [{input_name: samples[i:i + batch]}
                       for i in range(0, len(samples) - batch + 1, batch)]
        self._it = iter(self._items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


def _holdout_cosine(path: Path, input_name: str, holdout: np.ndarray, batch: int,
                    reference: list[np.ndarray]) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return float(np.mean([
        logit_cosine(sess.run(None, {input_name: holdout[i:i + batch]})[0], ref)
        for i, ref in zip(range(0, len(holdout) - batch + 1, batch), reference, strict=False)]))


# `--int8-plan fast`: a Conv / Gemm / MatMul is quantized only if it does at least this many
# multiply-adds per element its QuantizeLinear / DequantizeLinear boundary converts
# (Cin·Cout·k²/(Cin·s² + Cout) for a conv; K·N/(K+N) for a linear). Below it, ORT's Q/DQ
# work and per-node overhead cost more than the int8 kernel saves. Measured, ORT x86, 2 threads,
# ms at thresholds 0 / 40 / 80 (fp32): FastViT-T8 8.96 / 7.19 / 7.54 (7.91), LeViT-128S
# 4.82 / 4.42 / 4.21 (5.13), EfficientFormer-L1 10.99 / 10.35 / 10.16 (13.90).
MIN_MACS_PER_BOUNDARY_ELEMENT = 64.0


def _static_shapes(model: Any) -> dict[str, list[int]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {}
    for v in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = [d.dim_value for d in v.type.tensor_type.shape.dim]
        if dims and all(d > 0 for d in dims):
            shapes[v.name] = dims
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    return shapes


def macs_per_boundary_element(node: Any, shapes: dict[str, list[int]],
                              initializers: set[str]) -> float | None:
    """Multiply-adds per input + output element of a Conv / Gemm / MatMul with a constant
    weight; None when shapes are unknown or the weight is not constant."""
    if len(node.input) < 2 or node.input[1] not in initializers:
        return None
    inp, out, weight = (shapes.get(node.input[0]), shapes.get(node.output[0]),
                        shapes.get(node.input[1]))
    if not inp or not out or not weight:
        return None
    if node.op_type == "Conv":
        macs = float(np.prod(out)) * float(np.prod(weight[1:]))
    elif node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        macs = float(np.prod(out)) * float(weight[1] if trans_b else weight[0])
    elif node.op_type == "MatMul":
        macs = float(np.prod(out)) * float(weight[-2])
    else:
        return None
    return macs / float(np.prod(inp) + np.prod(out))


def _nodes_of_kind(model: Any, kind: str) -> list[str]:
    """Node names of a kind that is not a plain op type: `dwconv` (grouped Conv),
    `low_intensity` (below MIN_MACS_PER_BOUNDARY_ELEMENT), `dynamic_matmul` (MatMul whose B
    is an activation: ORT's QDQ quantizer ignores MatMulConstBOnly)."""
    initializers = {i.name for i in model.graph.initializer}
    if kind == "dwconv":
        return [n.name for n in model.graph.node if n.op_type == "Conv" and next(
            (a.i for a in n.attribute if a.name == "group"), 1) > 1]
    if kind == "dynamic_matmul":
        return [n.name for n in model.graph.node
                if n.op_type == "MatMul" and n.input[1] not in initializers]
    if kind == "low_intensity":
        shapes = _static_shapes(model)
        out = []
        for n in model.graph.node:
            if n.op_type in ("Conv", "Gemm", "MatMul"):
                ratio = macs_per_boundary_element(n, shapes, initializers)
                if ratio is not None and ratio < MIN_MACS_PER_BOUNDARY_ELEMENT:
                    out.append(n.name)
        return out
    return []


# quantize_static's extra_options that configure its calibrator (same mapping as ORT's own).
_CALIB_EXTRA_KEYS = (("CalibTensorRangeSymmetric", "symmetric"),
                     ("CalibMovingAverage", "moving_average"),
                     ("CalibMovingAverageConstant", "averaging_constant"),
                     ("CalibMaxIntermediateOutputs", "max_intermediate_outputs"),
                     ("CalibPercentile", "percentile"))


def _module_of_tensors(model: Any) -> dict[str, str]:
    """ONNX tensor name -> the torch module that produced it (the dynamo exporter's
    `pkg.torch.onnx.name_scopes` metadata), where the exporter recorded it."""
    import ast

    out = {}
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props
                       if p.key == "pkg.torch.onnx.name_scopes"), None)
        if not scopes:
            continue
        try:
            names = [n for n in ast.literal_eval(scopes)[:-1] if n]
        except (ValueError, SyntaxError):
            continue
        for tensor in node.output:
            out[tensor] = names[-1] if names else "<model>"
    return out


def _degenerate_aware_collector(calibrator: Any, findings: dict[str, RangeFinding],
                                module_of: dict[str, str]) -> Any:
    """ORT's HistogramCollector, except that tensors whose range is zero, constant,
    near-constant or non-finite never reach np.histogram (which raises "Too many bins for data
    range" on them): they get the exact min/max range of quant/ranges.py, or none at all
    (non-finite: their nodes stay float)."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    class DegenerateAwareCollector(HistogramCollector):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(method=calibrator.method, symmetric=calibrator.symmetric,
                             num_bins=calibrator.num_bins,
                             num_quantized_bins=calibrator.num_quantized_bins,
                             percentile=calibrator.percentile, scenario=calibrator.scenario)
            self.minmax: dict[str, tuple[float, float]] = {}

        def collect(self, name_to_arr: dict[str, Any]) -> None:
            ordinary = {}
            for name, arrays in name_to_arr.items():
                parts = arrays if isinstance(arrays, list) else [arrays]
                values = np.concatenate([np.asarray(a).ravel() for a in parts])
                finding = findings.get(name)
                if finding is not None and finding.kind == "non-finite":
                    continue
                low, high, finite = array_range(values)
                if not finite:
                    bad = values[~np.isfinite(values)]
                    what = float("nan") if np.isnan(bad).any() else float(bad[0])
                    findings[name] = RangeFinding(name, "non-finite", what, what,
                                                  module_of.get(name))
                    self.histogram_dict.pop(name, None)
                    self.minmax.pop(name, None)
                    continue
                if name in self.minmax:
                    old_low, old_high = self.minmax[name]
                    low, high = min(low, old_low), max(high, old_high)
                kind = classify_range(low, high)
                if name in self.minmax or (kind is not None and name not in self.histogram_dict):
                    self.minmax[name] = (low, high)
                    if kind is not None:
                        findings[name] = RangeFinding(name, kind, low, high, module_of.get(name))
                    else:  # degenerate in an earlier batch only: min/max, recorded as such
                        findings[name] = RangeFinding(name, "near-constant", low, high,
                                                      module_of.get(name))
                    continue
                ordinary[name] = arrays
            if ordinary:
                super().collect(ordinary)

        def compute_collection_result(self) -> dict[str, Any]:
            result = dict(super().compute_collection_result()) if self.histogram_dict else {}
            for name, (low, high) in self.minmax.items():
                lo, hi = safe_range(low, high)
                result[name] = (np.array(lo, np.float32), np.array(hi, np.float32),
                                np.zeros(1, np.int64), np.array([lo, hi], np.float32))
            return result

    return DegenerateAwareCollector()


def calibrate_tensor_ranges(model_path: Path, reader: Any, ops: list[str] | None, method: str,
                            extra: dict[str, Any], work: Path, module_of: dict[str, str]
                            ) -> tuple[Any, list[RangeFinding]]:
    """ORT's own calibrator for `method` (what quantize_static would run), made safe for
    degenerate tensors; returns (TensorsData for quantize_static's calibration cache, the
    tensors that needed a rule of quant/ranges.py)."""
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        HistogramCalibrater,
        TensorData,
        TensorsData,
        create_calibrator,
    )

    calib_extra = {key: extra[name] for name, key in _CALIB_EXTRA_KEYS if name in extra}
    calibrator = create_calibrator(
        model_path, ops, augmented_model_path=str(work / "augmented.onnx"),
        calibrate_method=getattr(CalibrationMethod, _ORT_METHODS[method]),
        extra_options=calib_extra)
    findings: dict[str, RangeFinding] = {}
    if isinstance(calibrator, HistogramCalibrater):
        calibrator.collector = _degenerate_aware_collector(calibrator, findings, module_of)
    calibrator.collect_data(reader)
    computed = calibrator.compute_data()
    ranges: dict[str, Any] = {}
    for name, data in computed.items():
        low, high = (float(np.min(data.range_value[0])), float(np.max(data.range_value[1])))
        kind = classify_range(low, high)
        if kind == "non-finite":  # min/max calibration saw an Inf
            findings[name] = RangeFinding(name, kind, low, high, module_of.get(name))
            continue
        if kind is not None and name not in findings:
            findings[name] = RangeFinding(name, kind, low, high, module_of.get(name))
        if kind is not None:
            lo, hi = safe_range(low, high)
            data = TensorData(lowest=np.array(lo, np.float32), highest=np.array(hi, np.float32))
        ranges[name] = data
    del calibrator
    return TensorsData(computed.calibration_method, ranges), list(findings.values())


def _nodes_touching(model: Any, tensors: set[str]) -> list[str]:
    return sorted({n.name for n in model.graph.node
                   if tensors & {*n.input, *n.output}})


def _neighbourhoods(model: Any, sites: list[str]) -> dict[str, list[str]]:
    """Per site: itself and the sites that produce or consume its activations. ORT's QDQ
    quantizer puts a Q/DQ pair on an edge when either end is quantized, so excluding one node
    leaves its input and output edges int8; a tensor (one huge outlier channel) only leaves
    int8 when both of its ends are excluded. A node's activation is its first input."""
    from edgekit.quant.sensitivity import neighbourhoods

    nodes = {n.name: n for n in model.graph.node}
    producer = {t: n.name for n in model.graph.node for t in n.output}
    consumers: dict[str, list[str]] = {}
    for n in model.graph.node:
        for t in n.input:
            consumers.setdefault(t, []).append(n.name)

    def inputs(name: str) -> list[str]:
        node = nodes[name]
        return [producer[node.input[0]]] if node.input and node.input[0] in producer else []

    def users(name: str) -> list[str]:
        return [c for t in nodes[name].output for c in consumers.get(t, [])]

    return neighbourhoods(sites, inputs, users,
                          lambda name: nodes[name].op_type in _PASSTHROUGH, depth=4)


# Ops a Q/DQ pair passes through unchanged in ORT's QDQ graphs (for _neighbourhoods).
_PASSTHROUGH = {"Relu", "Clip", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
                "MaxPool"}


def _node(model: Any, name: str) -> Any:
    return next(n for n in model.graph.node if n.name == name)


# `mixed`: where the sites the sensitivity analysis picks go (quant/modes.py MIXED_CHOICES).
# ONNX has 16-bit Q/DQ (opset 21), so `auto` is int16 here; ORT's CPU EP computes int16-QDQ
# ops in float between the Q/DQ pairs, NPU EPs with a 16-bit path (QNN HTP) in int16.
MIXED_ONNX = {"float": "float", "int16": "int16", "auto": "int16"}
_INT16 = "QInt16"


def _float_activations(model: Any) -> set[str]:
    """Names of the float tensors shape inference types in `model`, initializers excluded."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    constant = {i.name for i in model.graph.initializer}
    return {v.name for v in (*inferred.graph.value_info, *inferred.graph.input,
                             *inferred.graph.output)
            if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and v.name not in constant}


def _int16_overrides(model: Any, nodes: list[str], activations: set[str]
                     ) -> dict[str, list[dict[str, Any]]]:
    """quantize_static's TensorQuantOverrides giving the activations (non-constant inputs and
    outputs) of `nodes` int16: the edges of a picked site are int16 whichever end quantizes
    them, so a site is promoted on its own (no neighbourhood needed, unlike floating it)."""
    from onnxruntime.quantization import QuantType

    out: dict[str, list[dict[str, Any]]] = {}
    for name in nodes:
        node = _node(model, name)
        for tensor in (*node.input, *node.output):
            if tensor in activations:
                out[tensor] = [{"quant_type": getattr(QuantType, _INT16)}]
    return out


def _kind_reason(kind: str, config: QuantConfig, float_kinds: Mapping[str, str]) -> str:
    if kind in config.kept_kinds:
        return f"--keep-float {kind}"
    if kind == "dynamic_matmul":
        return "MatMul of two activations: ORT has no fused int8 kernel for it (fused plan)"
    return f"speed ({kind}): {float_kinds.get(kind, 'kept float by the int8 plan')}"


def quantize_onnx_file(path: Path, input_name: str, calib: CalibrationSet, holdout: np.ndarray,
                       batch: int, config: QuantConfig, plan: str = DEFAULT_ORT_PLAN,
                       on_step: Callable[[str], None] = lambda s: None,
                       float_kinds: Mapping[str, str] | None = None, mixed: str = "float"
                       ) -> OrtQuantResult:
    """Replace the fp32 model at `path` with its int8 version; nodes of `float_kinds` ({kind:
    the evidence that keeps it float}) and of the user's `--keep-float` kinds stay float.
    `mixed` (MIXED_ONNX): what the `--keep-float auto` sensitivity analysis does with the sites
    it picks: "float" leaves them unquantized, "int16" gives their activations int16 (weights
    stay int8). A plan with 16-bit activations already (w8a16) floats them."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import save_tensors_data
    from onnxruntime.quantization.shape_inference import quant_pre_process

    spec = ORT_PLANS[plan]
    if mixed not in MIXED_ONNX:
        raise UsageError(f"unknown --mixed '{mixed}'", hint=f"use {', '.join(MIXED_ONNX)}")
    mixed = MIXED_ONNX[mixed] if spec["activation"] != _INT16 else "float"
    method = config.calib_method if config.calib_method != "auto" else \
        spec.get("auto_method", "percentile")
    if method not in _ORT_METHODS:
        raise UsageError(f"--calib-method {method} is not available for onnx",
                         hint=f"use {', '.join(_ORT_METHODS)} for --to onnx")
    ops = list(spec["ops"]) if spec["ops"] else None
    float_kinds = float_kinds or {}
    kinds = (*config.kept_kinds, *float_kinds)
    kept = {op for kind in kinds for op in ORT_OPS_OF_KIND.get(kind, ())}
    if kept:
        if ops is None:
            from onnxruntime.quantization.registry import QDQRegistry

            ops = list(QDQRegistry)
        ops = [o for o in ops if o not in kept]
    extra = {"MatMulConstBOnly": spec["const_b_only"], "CalibPercentile": config.percentile,
             "ActivationSymmetric": False, "WeightSymmetric": True}
    reduce_range = spec["activation"] == "QUInt8" and u8s8_saturates_here()
    with tempfile.TemporaryDirectory(prefix="edgekit-ortq-") as tmp_s:
        tmp = Path(tmp_s)
        pre = tmp / "pre.onnx"
        on_step("ORT pre-processing (shape inference, basic optimization)")
        try:
            quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - some graphs defeat ORT's optimizer; quantize as is
            pre = path
        pre_model = onnx.load(str(pre), load_external_data=False)
        if spec["const_b_only"]:
            kinds = (*kinds, "dynamic_matmul")
        reasons = {n: _kind_reason(kind, config, float_kinds) for kind in kinds
                   for n in _nodes_of_kind(pre_model, kind)}
        reasons.update({n.name: _kind_reason(kind, config, float_kinds) for kind in kinds
                        for n in pre_model.graph.node
                        if n.op_type in ORT_OPS_OF_KIND.get(kind, ())})
        on_step(f"calibrating on {len(calib)} samples ({method})")
        cache = tmp / "ranges.json"
        try:
            ranges, findings = calibrate_tensor_ranges(
                pre, _Reader(input_name, calib.samples, batch), ops, method, extra, tmp,
                _module_of_tensors(onnx.load(str(path), load_external_data=False)))
        except Exception as exc:  # noqa: BLE001 - ORT raises many types
            raise ExportError(f"ONNX Runtime calibration ({method}) failed: "
                              f"{type(exc).__name__}: {str(exc)[:300]}",
                              hint="try another --calib-method, or --keep-float with the "
                                   "failing op kind") from exc
        save_tensors_data(ranges, cache)
        non_finite = {f.tensor for f in findings if f.kind == "non-finite"}
        for name in _nodes_touching(pre_model, non_finite):
            bad = sorted(non_finite & {*_node(pre_model, name).input,
                                       *_node(pre_model, name).output})
            reasons.setdefault(name, "non-finite calibration values (NaN/Inf) in "
                               + ", ".join(bad))
        forced = sorted(reasons)
        fp32 = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"])
        reference = [fp32.run(None, {input_name: holdout[i:i + batch]})[0]
                     for i in range(0, len(holdout) - batch + 1, batch)]

        activations = _float_activations(pre_model) if mixed == "int16" else set()

        def quantize(exclude: list[str], out: Path, int16: list[str] | None = None) -> None:
            options = {**extra, "TensorQuantOverrides": _int16_overrides(
                pre_model, int16, activations)} if int16 else extra
            quantize_static(
                str(pre), str(out), _Reader(input_name, calib.samples, batch),
                quant_format=QuantFormat.QDQ if spec["format"] == "QDQ" else
                QuantFormat.QOperator,
                op_types_to_quantize=ops, per_channel=config.per_channel,
                activation_type=getattr(QuantType, spec["activation"]),
                weight_type=QuantType.QInt8, nodes_to_exclude=[*forced, *exclude],
                calibrate_method=getattr(CalibrationMethod, _ORT_METHODS[method]),
                extra_options=options, calibration_cache_path=cache, reduce_range=reduce_range)

        on_step(f"quantizing ({plan})")
        full = tmp / "int8.onnx"
        try:
            quantize([], full)
        except Exception as exc:  # noqa: BLE001 - ORT raises many types
            raise ExportError(f"ONNX Runtime quantization failed: {type(exc).__name__}: "
                              f"{str(exc)[:300]}", hint="try --calib-method minmax, or "
                              "--keep-float with the failing op kind") from exc
        result = OrtQuantResult(plan, method, reduce_range=reduce_range, findings=findings,
                                mixed=mixed)
        sites = [n.name for n in pre_model.graph.node
                 if (ops is None or n.op_type in ops) and n.name not in forced]
        result.sites = len(sites) + len(forced)
        result.cosine_all_int8 = _holdout_cosine(full, input_name, holdout, batch, reference)
        result.cosine_final = result.cosine_all_int8
        chosen: list[str] = []
        why: dict[str, str] = {}
        if config.keep_float == "auto" and result.cosine_all_int8 < config.min_cosine:
            on_step(f"sensitivity analysis over {len(sites)} nodes "
                    f"(all-int8 cosine {result.cosine_all_int8:.4f} < {config.min_cosine})")
            probe = tmp / "probe.onnx"

            def cosine_with(picked: list[str]) -> float:
                if mixed == "int16":
                    quantize([], probe, int16=picked)
                else:
                    quantize(picked, probe)
                return _holdout_cosine(probe, input_name, holdout, batch, reference)

            def keep(names: list[str], cos: float) -> None:
                shutil.copyfile(probe, full)  # the accepted set's model, already quantized

            around = {s: [s] for s in sites} if mixed == "int16" else \
                _neighbourhoods(pre_model, sites)
            choice = choose_float_sites(sites, around, cosine_with, result.cosine_all_int8,
                                        config.min_cosine, on_chosen=keep)
            result.sensitivity, chosen, why = choice.sensitivity, choice.chosen, choice.reasons
            if choice.cosine is not None:
                result.cosine_final = choice.cosine
            if mixed == "int16":
                gain = {row["site"]: row["cosine_gain"] for row in choice.sensitivity}
                result.int16_nodes, chosen, why = chosen, [], {}
                result.int16_reasons = {
                    n: f"sensitivity: hold-out logit cosine +{gain[n]:.4g} with its "
                       "activations int16" for n in result.int16_nodes}
        result.excluded_nodes, result.forced_nodes = chosen, forced
        result.float_reasons = {**reasons, **why}
        model = onnx.load(str(full))
        onnx.save(model, str(path))
    return result
