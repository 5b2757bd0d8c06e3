"""ONNX Runtime static int8: calibrate once (ranges cached), quantize with per-channel weights.

Why not `quantize_static` defaults: with every op quantized (QDQ around LayerNorm/GELU/softmax
inputs, int8 attention matmuls) ORT's CPU int8 of EfficientFormer-L1 / LeViT-128S / FastViT-T8
ran 1.2-2.2x *slower* than fp32 here. The default plan quantizes what ORT fuses into real int8
kernels (Conv, Gemm, MatMul with a constant B: QLinearConv / MatMulIntegerToFloat / QGemm), with
u8 activations x s8 per-channel weights (the VNNI path on x86, dot-product path on ARM), and
leaves the rest float. `bench/int8_speed.py` measures the alternatives.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.calibration import CalibrationSet
from edgekit.errors import ExportError, UsageError
from edgekit.quant.config import QuantConfig
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
                "holdout_cosine": self.cosine_final, "sensitivity_top": self.sensitivity[:10]}


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


def quantize_onnx_file(path: Path, input_name: str, calib: CalibrationSet, holdout: np.ndarray,
                       batch: int, config: QuantConfig, plan: str = DEFAULT_ORT_PLAN,
                       on_step: Callable[[str], None] = lambda s: None,
                       float_kinds: tuple[str, ...] = ()) -> OrtQuantResult:
    """Replace the fp32 model at `path` with its int8 version; nodes of `float_kinds` (and of
    the user's `--keep-float` kinds) stay float."""
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    method = config.calib_method if config.calib_method != "auto" else "percentile"
    if method not in _ORT_METHODS:
        raise UsageError(f"--calib-method {method} is not available for onnx",
                         hint=f"use {', '.join(_ORT_METHODS)} for --to onnx")
    spec = ORT_PLANS[plan]
    ops = list(spec["ops"]) if spec["ops"] else None
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
        forced = sorted({n for kind in kinds for n in _nodes_of_kind(pre_model, kind)})
        cache = tmp / "ranges.json"
        fp32 = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"])
        reference = [fp32.run(None, {input_name: holdout[i:i + batch]})[0]
                     for i in range(0, len(holdout) - batch + 1, batch)]

        def quantize(exclude: list[str], out: Path) -> None:
            quantize_static(
                str(pre), str(out), _Reader(input_name, calib.samples, batch),
                quant_format=QuantFormat.QDQ if spec["format"] == "QDQ" else
                QuantFormat.QOperator,
                op_types_to_quantize=ops, per_channel=config.per_channel,
                activation_type=getattr(QuantType, spec["activation"]),
                weight_type=QuantType.QInt8, nodes_to_exclude=[*forced, *exclude],
                calibrate_method=getattr(CalibrationMethod, _ORT_METHODS[method]),
                extra_options=extra, calibration_cache_path=cache, reduce_range=reduce_range)

        on_step(f"calibrating on {len(calib)} samples ({method}) and quantizing ({plan})")
        full = tmp / "int8.onnx"
        try:
            quantize([], full)
        except Exception as exc:  # noqa: BLE001 - ORT raises many types
            raise ExportError(f"ONNX Runtime quantization failed: {type(exc).__name__}: "
                              f"{str(exc)[:300]}", hint="try --calib-method minmax, or "
                              "--keep-float with the failing op kind") from exc
        result = OrtQuantResult(plan, method, reduce_range=reduce_range)
        sites = [n.name for n in pre_model.graph.node
                 if (ops is None or n.op_type in ops) and n.name not in forced]
        result.sites = len(sites) + len(forced)
        result.cosine_all_int8 = _holdout_cosine(full, input_name, holdout, batch, reference)
        result.cosine_final = result.cosine_all_int8
        chosen: list[str] = []
        if config.keep_float == "auto" and result.cosine_all_int8 < config.min_cosine:
            on_step(f"sensitivity analysis over {len(sites)} nodes "
                    f"(all-int8 cosine {result.cosine_all_int8:.4f} < {config.min_cosine})")
            gains = []
            probe = tmp / "probe.onnx"
            for name in sites:
                quantize([name], probe)
                c = _holdout_cosine(probe, input_name, holdout, batch, reference)
                gains.append((c - result.cosine_all_int8, name))
            gains.sort(reverse=True)
            result.sensitivity = [{"site": n, "cosine_gain": round(g, 6)} for g, n in gains]
            for gain, name in gains[: max(1, len(sites) // 4)]:
                if gain <= 0:
                    break
                chosen.append(name)
                quantize(chosen, full)
                result.cosine_final = _holdout_cosine(full, input_name, holdout, batch,
                                                      reference)
                if result.cosine_final >= config.min_cosine:
                    break
        result.excluded_nodes, result.forced_nodes = chosen, forced
        model = onnx.load(str(full))
        onnx.save(model, str(path))
    return result
