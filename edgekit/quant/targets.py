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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from edgekit.calibration import CalibrationSet
from edgekit.quant.config import QuantConfig
from edgekit.registry import Registry

Step = Callable[[str], None]


@dataclass
class Prepared:
    module: Any
    converter_kwargs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


class TargetQuantizer(Protocol):
    format: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]

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

    def quantizer_parts(self) -> tuple[Any, Any]:
        """(quantizer class, get_symmetric_quantization_config) of the target's PT2E quantizer."""
        raise NotImplementedError(f"{type(self).__name__} must name its PT2E quantizer")

    def make_quantizer(self, method: str, config: QuantConfig) -> Any:
        from edgekit.quant.pt2e import activation_observer, with_activation_observer

        quantizer_cls, get_config = self.quantizer_parts()
        qconfig = get_config(is_per_channel=config.per_channel)
        observer = activation_observer(method, config.percentile, self.format, eps=2**-12)
        return quantizer_cls().set_global(with_activation_observer(qconfig, observer))

    def converter_kwargs(self, quantizer: Any, config: QuantConfig) -> dict[str, Any]:
        return {}

    def before_export(self, model: Any, example: Any, calib: CalibrationSet,
                      holdout: np.ndarray, config: QuantConfig, on_step: Step) -> Prepared:
        from edgekit.quant.pt2e import quantize_pt2e

        made: dict[str, Any] = {}

        def make(method: str) -> Any:
            made["q"] = self.make_quantizer(method, config)
            return made["q"]

        method = config.calib_method if config.calib_method != "auto" else self.default_method
        result = quantize_pt2e(model, example, calib, holdout, config, make, self.format,
                               on_step, fold_quantize=self.fold_quantize, method=method)
        return Prepared(result.module, self.converter_kwargs(made["q"], config),
                        {"quantizer": self.name, "calib_method": method, **result.details()})

    def after_export(self, file: Path, input_name: str, calib: CalibrationSet,
                     holdout: np.ndarray, batch: int, config: QuantConfig,
                     on_step: Step) -> dict[str, Any]:
        return {}


class ExecuTorchInt8(_Pt2eTarget):
    format = "executorch"
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

    def quantizer_parts(self) -> tuple[Any, Any]:
        from litert_torch.quantize.pt2e_quantizer import (
            PT2EQuantizer,
            get_symmetric_quantization_config,
        )

        return PT2EQuantizer, get_symmetric_quantization_config

    def converter_kwargs(self, quantizer: Any, config: QuantConfig) -> dict[str, Any]:
        from litert_torch.quantize.quant_config import QuantConfig as LiteRtQuantConfig

        return {"quant_config": LiteRtQuantConfig(pt2e_quantizer=quantizer),
                "int8_io": config.int8_io}


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
        # affine, not symmetric: with a fixed zero point (128) every all-positive activation
        # (post-softmax, hardswish/GELU outputs) wastes half of the uint8 levels (Q-HyViT's
        # zero-point point). Hold-out logit cosine here, fmnist_levit: 0.9924 -> 0.9986.
        return CoreMLQuantizer(LinearQuantizerConfig.from_dict({"global_config": {
            "quantization_scheme": "affine", "weight_per_channel": config.per_channel,
            "activation_dtype": "quint8", "weight_dtype": "qint8",
            "activation_observer": "min_max"}}))


class OnnxInt8:
    format: ClassVar[str] = "onnx"
    methods: ClassVar[tuple[str, ...]] = ("minmax", "percentile", "entropy")

    def before_export(self, model: Any, example: Any, calib: CalibrationSet,
                      holdout: np.ndarray, config: QuantConfig, on_step: Step) -> Prepared:
        return Prepared(model)

    def after_export(self, file: Path, input_name: str, calib: CalibrationSet,
                     holdout: np.ndarray, batch: int, config: QuantConfig,
                     on_step: Step) -> dict[str, Any]:
        from edgekit.quant.onnx import DEFAULT_ORT_PLAN, quantize_onnx_file

        plan = str(config.extra.get("ort_plan", DEFAULT_ORT_PLAN))
        result = quantize_onnx_file(file, input_name, calib, holdout, batch, config, plan,
                                    on_step)
        return {"quantizer": "onnxruntime quantize_static", **result.details()}


QUANTIZERS: Registry[type[TargetQuantizer]] = Registry("int8 quantizer")
QUANTIZERS.register("onnx", OnnxInt8)
QUANTIZERS.register("executorch", ExecuTorchInt8)
QUANTIZERS.register("tflite", LiteRtInt8)
QUANTIZERS.register("coreml", CoreMLInt8)
