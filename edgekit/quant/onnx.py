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

ORT_OPS_OF_KIND = {
    "conv": ("Conv",), "linear": ("Gemm", "MatMul"), "matmul": ("MatMul",), "add": ("Add",),
    "mul": ("Mul",), "softmax": ("Softmax",), "concat": ("Concat",),
    "pool": ("AveragePool", "GlobalAveragePool", "MaxPool"),
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
_ORT_METHODS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


@dataclass
class OrtQuantResult:
    plan: str
    method: str
    excluded_nodes: list[str] = field(default_factory=list)
    sites: int = 0
    cosine_all_int8: float | None = None
    cosine_final: float | None = None
    sensitivity: list[dict[str, Any]] = field(default_factory=list)

    def details(self) -> dict[str, Any]:
        plan = ORT_PLANS[self.plan]
        return {"plan": self.plan, "quant_format": plan["format"],
                "op_types": list(plan["ops"]) if plan["ops"] else "all",
                "activation_type": plan["activation"], "weight_type": "QInt8 per-channel",
                "calib_method": self.method, "sites": self.sites,
                "float_sites": self.excluded_nodes,
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
    cos = []
    for i, ref in zip(range(0, len(holdout) - batch + 1, batch), reference, strict=False):
        out = sess.run(None, {input_name: holdout[i:i + batch]})[0].astype(np.float64).ravel()
        r = ref.astype(np.float64).ravel()
        cos.append(float(out @ r / (np.linalg.norm(out) * np.linalg.norm(r) + 1e-30)))
    return float(np.mean(cos))


def quantize_onnx_file(path: Path, input_name: str, calib: CalibrationSet, holdout: np.ndarray,
                       batch: int, config: QuantConfig, plan: str = DEFAULT_ORT_PLAN,
                       on_step: Callable[[str], None] = lambda s: None) -> OrtQuantResult:
    """Replace the fp32 model at `path` with its int8 version."""
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
    kept = {op for kind in config.kept_kinds for op in ORT_OPS_OF_KIND[kind]}
    if kept:
        if ops is None:
            from onnxruntime.quantization.registry import QDQRegistry

            ops = list(QDQRegistry)
        ops = [o for o in ops if o not in kept]
    extra = {"MatMulConstBOnly": spec["const_b_only"], "CalibPercentile": config.percentile,
             "ActivationSymmetric": False, "WeightSymmetric": True}
    with tempfile.TemporaryDirectory(prefix="edgekit-ortq-") as tmp_s:
        tmp = Path(tmp_s)
        pre = tmp / "pre.onnx"
        on_step("ORT pre-processing (shape inference, basic optimization)")
        try:
            quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
        except Exception:  # noqa: BLE001 - some graphs defeat ORT's optimizer; quantize as is
            pre = path
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
                weight_type=QuantType.QInt8, nodes_to_exclude=exclude,
                calibrate_method=getattr(CalibrationMethod, _ORT_METHODS[method]),
                extra_options=extra, calibration_cache_path=cache)

        on_step(f"calibrating on {len(calib)} samples ({method}) and quantizing ({plan})")
        full = tmp / "int8.onnx"
        try:
            quantize([], full)
        except Exception as exc:  # noqa: BLE001 - ORT raises many types
            raise ExportError(f"ONNX Runtime quantization failed: {type(exc).__name__}: "
                              f"{str(exc)[:300]}", hint="try --calib-method minmax, or "
                              "--keep-float with the failing op kind") from exc
        result = OrtQuantResult(plan, method)
        sites = [n.name for n in onnx.load(str(pre), load_external_data=False).graph.node
                 if ops is None or n.op_type in ops]
        result.sites = len(sites)
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
        result.excluded_nodes = chosen
        model = onnx.load(str(full))
        onnx.save(model, str(path))
    return result
