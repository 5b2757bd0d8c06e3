"""Per-target int8: each format's own quantizer, driven by one QuantConfig.

| format     | quantizer                                        | where            |
| ---------- | ------------------------------------------------ | ---------------- |
| onnx       | ONNX Runtime static QDQ, per-channel weights     | after export     |
| executorch | PT2E XNNPACKQuantizer (per-channel symmetric)    | before export    |
| tflite     | litert-torch PT2EQuantizer (full-integer ops)    | before export    |
| coreml     | PT2E CoreMLQuantizer, W8A8 (iOS17 mlprogram)     | before export    |

`before_export` returns the module the exporter converts plus converter keyword arguments;
`after_export` may rewrite the exported file. Both return details for the manifest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from edgekit.calibration import CalibrationSet
from edgekit.quant.config import QuantConfig
from edgekit.quant.recipes import Prepared
from edgekit.registry import Registry

Step = Callable[[str], None]


@dataclass(frozen=True)
class SpeedCall:
    """What `--int8-plan fast` (the default) does with one op kind on one ISA, and the
    measurement that decided it. `--int8-plan all` quantizes everything; `edgekit bench` on the
    device has the last word."""

    keep_float: bool  # True: the int8 kernel loses to fp32 there, the op stays float
    evidence: str


# Per runtime engine, per ISA (QuantConfig.isa, `--int8-isa`). x86_64 was measured in ms on
# this AVX-512 VNNI host (2 threads); arm64 in guest instructions per inference on the
# emulated device, fast vs all (bench/arm_device.py --plan -> bench/results/arm_int8_plan.json,
# README "int8 speed plan on ARM").
XNNPACK_INT8_SPEED: dict[str, dict[str, SpeedCall]] = {
    "x86_64": {"dwconv": SpeedCall(True, (
        "XNNPACK's int8 depthwise conv is slower than its fp32 one on x86_64 (3×3 at "
        "64×64×48: 0.062 vs 0.033 ms; FastViT-T8 TFLite int8 18.4 ms with int8 depthwise, "
        "7.7 ms with float depthwise, fp32 11.2 ms)"))},
    "arm64": {"dwconv": SpeedCall(False, (
        "XNNPACK's int8 depthwise conv costs what the float one does on arm64 (TFLite, guest "
        "instructions all-int8 ÷ float depthwise: FastViT-T8 1.01 on cortex-a76, 0.97 on "
        "cortex-a53; MobileOne-S0 1.00 / 0.99), so it stays int8: no float islands, one "
        "int8 graph"))},
}
ORT_INT8_SPEED: dict[str, dict[str, SpeedCall]] = {
    "x86_64": {
        "dwconv": SpeedCall(True, (
            "ONNX Runtime's QLinearConv depthwise kernel is slower than its fp32 Conv on "
            "x86_64 (FastViT-T8: 7×7 depthwise 12.2 vs 1.6 ms, 3×3 1.6 vs 0.58 ms)")),
        "low_intensity": SpeedCall(True, (
            "Conv/Gemm/MatMul with < 64 multiply-adds per element crossing its "
            "QuantizeLinear/DequantizeLinear boundary: on x86_64 the Q/DQ work costs more "
            "than the int8 kernel saves (quant/onnx.py MIN_MACS_PER_BOUNDARY_ELEMENT)"))},
    "arm64": {
        kind: SpeedCall(False, (
            f"{what} is cheaper in int8 on arm64: ONNX Runtime guest instructions with every "
            "op int8 ÷ with depthwise and low-intensity ops float (measured together): "
            "FastViT-T8 0.93 on cortex-a76, 1.00 on cortex-a53; MobileOne-S0 0.82 / 0.88"))
        for kind, what in (("dwconv", "the depthwise conv (QLinearConv)"),
                           ("low_intensity", "a low-intensity Conv/Gemm/MatMul with its Q/DQ"))},
}


def speed_plan(table: dict[str, dict[str, SpeedCall]], config: QuantConfig
               ) -> tuple[dict[str, str], dict[str, str]]:
    """({kind: evidence} kept float, {kind: evidence} kept int8) for speed on the config's
    ISA under `--int8-plan fast`; nothing under `all`."""
    if config.plan != "fast":
        return {}, {}
    calls = table.get(config.isa, {})
    return ({k: c.evidence for k, c in calls.items() if c.keep_float},
            {k: c.evidence for k, c in calls.items() if not c.keep_float})


class TargetQuantizer(Protocol):
    format: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]
    int8_speed: ClassVar[dict[str, dict[str, SpeedCall]]]  # isa -> kind -> call

    def before_export(self, model: Any, example: Any, calib: CalibrationSet,
                      holdout: np.ndarray, config: QuantConfig, on_step: Step) -> Prepared: ...

    def after_export(self, file: Path, input_name: str, calib: CalibrationSet,
                     holdout: np.ndarray, batch: int, config: QuantConfig,
                     on_step: Step) -> dict[str, Any]: ...


class _Pt2eTarget:
    """Shared PT2E flow; subclasses give the target quantizer for an activation observer."""

    format: ClassVar[str]
    methods: ClassVar[tuple[str, ...]] = ("minmax", "percentile", "mse")
    default_method: ClassVar[str] = "mse"  # what `--calib-method auto` means for the target
    name: ClassVar[str]
    fold_quantize: ClassVar[bool] = True  # int8 weight constants (litert-torch wants fp32+q/dq)
    int8_speed: ClassVar[dict[str, dict[str, SpeedCall]]] = {}

    def quantizer_parts(self) -> tuple[Any, Any]:
        """(quantizer class, get_symmetric_quantization_config) of the target's PT2E quantizer."""
        raise NotImplementedError(f"{type(self).__name__} must name its PT2E quantizer")

    def make_quantizer(self, method: str, config: QuantConfig) -> Any:
        from edgekit.quant.pt2e import (
            OBSERVER_EPS,
            activation_observer,
            with_activation_observer,
        )

        quantizer_cls, get_config = self.quantizer_parts()
        qconfig = get_config(is_per_channel=config.per_channel)
        observer = activation_observer(method, config.percentile, self.format,
                                       eps=OBSERVER_EPS)
        return quantizer_cls().set_global(with_activation_observer(qconfig, observer))

    def converter_kwargs(self, quantizer: Any, config: QuantConfig) -> dict[str, Any]:
        return {}

    def prepare_graph(self, graph_module: Any) -> object:
        """Annotate the exported graph for the quantizer (before prepare_pt2e)."""
        return None

    def before_export(self, model: Any, example: Any, calib: CalibrationSet,
                      holdout: np.ndarray, config: QuantConfig, on_step: Step) -> Prepared:
        from edgekit.quant.pt2e import quantize_pt2e

        made: dict[str, Any] = {}

        def make(method: str) -> Any:
            made["q"] = self.make_quantizer(method, config)
            return made["q"]

        method = config.calib_method if config.calib_method != "auto" else self.default_method
        speed, kept_int8 = speed_plan(self.int8_speed, config)
        result = quantize_pt2e(model, example, calib, holdout, config, make, self.format,
                               on_step, fold_quantize=self.fold_quantize, method=method,
                               prepare_graph=self.prepare_graph, float_kinds=tuple(speed))
        return Prepared(result.module, self.converter_kwargs(made["q"], config),
                        {"quantizer": self.name, "calib_method": method, "int8_plan": config.plan,
                         "int8_isa": config.isa, "float_for_speed": speed,
                         "int8_for_speed": kept_int8, **result.details()})

    def after_export(self, file: Path, input_name: str, calib: CalibrationSet,
                     holdout: np.ndarray, batch: int, config: QuantConfig,
                     on_step: Step) -> dict[str, Any]:
        return {}


class ExecuTorchInt8(_Pt2eTarget):
    format = "executorch"
    # Not XNNPACK_INT8_SPEED (x86_64): a float depthwise conv leaves its int8 neighbour with a float
    # input and a per-channel int8 weight, which ExecuTorch cannot lower (EfficientFormerV2:
    # "Missing out variants: dequantize_per_channel"). int8 depthwise is still faster than fp32
    # end to end here (FastViT-T8).
    int8_speed: ClassVar[dict[str, dict[str, SpeedCall]]] = {}
    name = "PT2E XNNPACKQuantizer (per-channel symmetric int8 weights, int8 activations)"

    def quantizer_parts(self) -> tuple[Any, Any]:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        return XNNPACKQuantizer, get_symmetric_quantization_config


class LiteRtInt8(_Pt2eTarget):
    format = "tflite"
    name = "litert-torch PT2EQuantizer (full-integer int8 ops, per-channel weights)"
    fold_quantize = False
    int8_speed = XNNPACK_INT8_SPEED

    def quantizer_parts(self) -> tuple[Any, Any]:
        from litert_torch.quantize.pt2e_quantizer import (
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )

        return PT2EQuantizer, get_symmetric_quantization_config

    def prepare_graph(self, graph_module: Any) -> object:
        from edgekit.quant.pt2e import stamp_source_functions

        return stamp_source_functions(graph_module)

    def converter_kwargs(self, quantizer: Any, config: QuantConfig) -> dict[str, Any]:
        from litert_torch.quantize.quant_config import QuantConfig as LiteRtQuantConfig

        # `fast`: int8 ops XNNPACK has no int8 kernel for run as float islands inside the
        # delegate (exporters/tflite_rewrite.py), instead of on the reference interpreter.
        return {"quant_config": LiteRtQuantConfig(pt2e_quantizer=quantizer),
                "int8_io": config.int8_io, "float_islands": config.plan == "fast"}


class CoreMLInt8(_Pt2eTarget):
    format = "coreml"
    methods: ClassVar[tuple[str, ...]] = ("minmax",)
    default_method: ClassVar[str] = "minmax"
    name = "PT2E CoreMLQuantizer (W8A8: per-channel int8 weights, affine uint8 activations)"

    def make_quantizer(self, method: str, config: QuantConfig) -> Any:
        from coremltools.optimize.torch.quantization import LinearQuantizerConfig
        from executorch.backends.apple.coreml.quantizer import CoreMLQuantizer

        from edgekit.errors import UsageError

        if method != "minmax":
            raise UsageError(f"--calib-method {method} is not available for coreml",
                             hint="Core ML's quantizer calibrates with min/max observers: "
                                  "use --calib-method minmax (or auto)")
        _memoize_coreml_patterns()
        # affine, not symmetric: with a fixed zero point (128) every all-positive activation
        # (post-softmax, hardswish/GELU outputs) wastes half of the uint8 levels (Q-HyViT's
        # zero-point point). Hold-out logit cosine here, fmnist_levit: 0.9924 -> 0.9986.
        return CoreMLQuantizer(LinearQuantizerConfig.from_dict({"global_config": {
            "quantization_scheme": "affine", "weight_per_channel": config.per_channel,
            "activation_dtype": "quint8", "weight_dtype": "qint8",
            "activation_observer": "min_max"}}))


# CoreMLQuantizer.annotate builds ~400 pattern graphs (conv/linear ± bn × activations, binary
# ops × activations), each by a strict torch.export of a few-op module: ~2 minutes per call on
# this machine, the same graphs for every model. They depend only on the factory's arguments,
# so one process builds each once; the matcher edits a pattern's output node in place
# (`_split_to_graph_and_name_node_map`), so every caller gets its own copy.
_COREML_PATTERN_FACTORIES = ("get_conv_pattern", "get_conv_bn_pattern", "get_linear_pattern",
                             "get_linear_bn_pattern", "get_binary_op_act_pattern")


def _memoize_coreml_patterns() -> None:
    import copy
    import functools

    import executorch.backends.apple.coreml.quantizer._coreml_quantizer_utils as utils

    for name in _COREML_PATTERN_FACTORIES:
        factory = getattr(utils, name)
        if getattr(factory, "_edgekit_memo", False):
            continue
        built = functools.cache(factory)

        def copied(*args: Any, _built: Any = built, **kwargs: Any) -> Any:
            return copy.deepcopy(_built(*args, **kwargs))

        copied._edgekit_memo = True  # type: ignore[attr-defined]
        setattr(utils, name, functools.wraps(factory)(copied))


class OnnxInt8:
    format: ClassVar[str] = "onnx"
    methods: ClassVar[tuple[str, ...]] = ("minmax", "percentile", "entropy")
    int8_speed: ClassVar[dict[str, dict[str, SpeedCall]]] = ORT_INT8_SPEED

    def before_export(self, model: Any, example: Any, calib: CalibrationSet,
                      holdout: np.ndarray, config: QuantConfig, on_step: Step) -> Prepared:
        return Prepared(model)

    def after_export(self, file: Path, input_name: str, calib: CalibrationSet,
                     holdout: np.ndarray, batch: int, config: QuantConfig,
                     on_step: Step) -> dict[str, Any]:
        from edgekit.quant.onnx import DEFAULT_ORT_PLAN, quantize_onnx_file

        plan = str(config.extra.get("ort_plan", DEFAULT_ORT_PLAN))
        speed, kept_int8 = speed_plan(self.int8_speed, config)
        result = quantize_onnx_file(file, input_name, calib, holdout, batch, config, plan,
                                    on_step, float_kinds=speed, mixed=config.mixed)
        return {"quantizer": "onnxruntime quantize_static", "int8_plan": config.plan,
                "int8_isa": config.isa, "float_for_speed": speed,
                "int8_for_speed": kept_int8, **result.details()}


QUANTIZERS: Registry[type[TargetQuantizer]] = Registry("int8 quantizer")
QUANTIZERS.register("onnx", OnnxInt8)
QUANTIZERS.register("executorch", ExecuTorchInt8)
QUANTIZERS.register("tflite", LiteRtInt8)
QUANTIZERS.register("coreml", CoreMLInt8)
