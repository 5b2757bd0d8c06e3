"""Quantization recipes: how one `--quant` mode (quant/modes.py) is done for one format.

A recipe is one registry entry, `RECIPES["mode/format"]`, with four stages the pipeline runs in
order for every format of a request — the same loop for every mode:

    setup(ctx)                         once per request, before any format (calibration, …)
    before_export(ctx, module, opts)   the module the exporter converts + converter arguments
    export(ctx, prepared, trace, …)    the file (default: the format's exporter)
    after_export(ctx, file, result)    rewrite the written file (ORT quantizers, Core ML
                                       weight compression); details for the manifest

plus `golden(ctx)` (what the runtime must reproduce). A mode a format cannot do has no entry and
a reason in WHY_NOT, which `recipe_for` turns into the CLI's refusal before anything is written.

| mode     | onnx                     | tflite                  | executorch      | coreml        |
| -------- | ------------------------ | ----------------------- | --------------- | ------------- |
| fp32     | exporter                 | exporter                | exporter        | fp32 compute  |
| fp16     | fp16 graph, fp32 I/O     | fp16 weights (AEQ)      | XNNPACK fp16    | fp16 compute  |
| w8       | int8 weights + DQ        | AEQ weight-only/dynamic | XNNPACK dynamic | int8 weights  |
| w8a16    | ORT QDQ, int16 act.      | AEQ static_wi8_ai16     | refused         | refused       |
| int8     | ORT static QDQ           | litert-torch PT2E       | PT2E XNNPACK    | PT2E CoreML   |
| int-only | edgekit integer graph    | AEQ full integer        | refused         | refused       |

(AEQ: ai-edge-quantizer; ekr takes int-only only.)
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from edgekit.errors import UsageError
from edgekit.exporter import EXPORTERS, ExportOptions, ExportResult
from edgekit.quant.config import QuantConfig
from edgekit.quant.modes import MODES
from edgekit.registry import Registry

Step = Callable[[str], None]


@dataclass
class Prepared:
    """What a recipe hands the exporter: the module, converter arguments, manifest details."""

    module: Any
    converter_kwargs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Calibration:
    config: QuantConfig
    calib: Any  # CalibrationSet
    holdout: np.ndarray  # never calibrated on: `--keep-float auto` measures its cosine here
    non_finite: list[dict[str, Any]]  # NaN/Inf inside the fp32 model that never reaches its output

    def details(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(),
                "calibration": {"set": self.calib.name, "samples": len(self.calib),
                                "holdout": len(self.holdout)},
                **({"non_finite_fp32": self.non_finite} if self.non_finite else {})}


class RequestContext:
    """What every format of one export request shares. The request-level work a recipe needs
    (calibration, RepQ-ViT, edgekit's integer graph) is computed on first use, once."""

    def __init__(self, req: Any, source: Any, golden: Any, reference: np.ndarray, check: Any,
                 model: Any, on_step: Step) -> None:
        self.req, self.source, self.golden = req, source, golden
        self.reference, self.check, self.model, self.on_step = reference, check, model, on_step
        self._cache: dict[str, Any] = {}
        self.source_modules: dict[str, str] = {}  # named_modules() before the deploy passes

    @property
    def example(self) -> Any:
        return self.golden[: self.req.batch]

    def calibration(self) -> Calibration:
        if "calibration" not in self._cache:
            config, calib, holdout = calibration_split(self.req.quant_config or QuantConfig(),
                                                       self.source.data_config, self.on_step)
            self._cache["calibration"] = Calibration(
                config, calib, holdout, check_finite(self.model, calib, self.on_step))
        cal: Calibration = self._cache["calibration"]
        return cal

    def repq(self) -> tuple[Any, dict[str, Any] | None]:
        """RepQ-ViT's LayerNorm reparameterization of the deployed model (int8), if asked."""
        if "repq" not in self._cache:
            cal = self.calibration()
            self._cache["repq"] = (_repq(self.model, cal.calib.samples, self.example,
                                         self.on_step) if cal.config.repq
                                   else (self.model, None))
        out: tuple[Any, dict[str, Any] | None] = self._cache["repq"]
        return out

    def integer(self, module: Any) -> dict[str, Any]:
        """--quant int-only: edgekit's integer graph, one for every format of the request."""
        if "integer" not in self._cache:
            self._cache["integer"] = _integer_graph(self.req, self.source, module, self.golden,
                                                    self.calibration(), self.on_step)
        out: dict[str, Any] = self._cache["integer"]
        return out


class Recipe:
    """One mode on one format. Subclasses override the stages they change."""

    mode: ClassVar[str]
    how: ClassVar[str] = "the format's exporter, unchanged"
    compute_precision: ClassVar[str] = "fp32"  # Core ML's compute precision by default
    no_dynamic_batch: ClassVar[str | None] = None  # why the recipe needs a static batch
    # companion files (exporter.py COMPANIONS) this recipe's file must not get, and why
    skip_companions: ClassVar[dict[str, str]] = {}

    def __init__(self, format: str) -> None:
        self.format = format

    def check(self, req: Any) -> None:
        """Refuse request options this recipe cannot honour (before anything runs)."""

    def setup(self, ctx: RequestContext) -> None:
        """Request-level work shared by every format (calibration), before the first one."""

    def source_module(self, ctx: RequestContext) -> Any:
        return ctx.model

    def before_export(self, ctx: RequestContext, module: Any, options: ExportOptions
                      ) -> Prepared:
        return Prepared(module)

    def export(self, ctx: RequestContext, prepared: Prepared, trace: Any,
               options: ExportOptions, out_dir: Path) -> ExportResult:
        exporter = EXPORTERS.get(self.format)()
        result: ExportResult = exporter.export(
            prepared.module, trace,
            dataclasses.replace(options, converter_kwargs=prepared.converter_kwargs), out_dir)
        return result

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        return {}

    def golden(self, ctx: RequestContext) -> tuple[np.ndarray, np.ndarray | None]:
        """(reference outputs the artifact is judged against, bit-exact outputs or None)."""
        return ctx.reference, None


class Float32(Recipe):
    mode = "fp32"


class RewriteFile(Recipe):
    """The format's exporter, then `rewrite(file, on_step) -> details` (a "module:function")
    rewrites the written file in place: ONNX fp16 / weight-only int8, Core ML weight
    compression."""

    def __init__(self, format: str, mode: str, how: str, rewrite: str, step: str,
                 compute_precision: str = "fp32",
                 skip_companions: dict[str, str] | None = None) -> None:
        super().__init__(format)
        self.mode, self.how = mode, how  # type: ignore[misc]
        self.rewrite, self.step = rewrite, step
        self.compute_precision = compute_precision  # type: ignore[misc]
        self.skip_companions = skip_companions or {}  # type: ignore[misc]

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        module, _, name = self.rewrite.partition(":")
        ctx.on_step(self.step)
        details: dict[str, Any] = getattr(importlib.import_module(module), name)(
            file, ctx.on_step)
        return details


# ---------------------------------------------------------------------------------------- fp16

class CoreMLPrecision(Recipe):
    """Core ML: the converter's compute precision (fp16 also stores fp16 weights)."""

    def __init__(self, format: str, mode: str) -> None:
        super().__init__(format)
        self.mode = mode  # type: ignore[misc]
        self.compute_precision = mode  # type: ignore[misc]
        self.how = (f"coremltools compute_precision={mode.upper().replace('FP', 'FLOAT')} "  # type: ignore[misc]
                    f"({mode} weights and activations)")


class TFLitePrecision(Recipe):
    """TFLite fp16 / w8 / w8a16: litert-torch's fp32 file through ai-edge-quantizer."""

    how = "litert-torch fp32, then an ai-edge-quantizer recipe"

    def __init__(self, format: str, mode: str) -> None:
        super().__init__(format)
        self.mode = mode  # type: ignore[misc]

    def setup(self, ctx: RequestContext) -> None:
        if MODES[self.mode].calibrated:
            ctx.calibration()

    def export(self, ctx: RequestContext, prepared: Prepared, trace: Any,
               options: ExportOptions, out_dir: Path) -> ExportResult:
        from edgekit.exporters.tflite_precision import export_precision

        samples = ctx.calibration().calib.samples if MODES[self.mode].calibrated else None
        ctx.on_step(f"quantizing for tflite ({self.mode}, ai-edge-quantizer)")
        result: ExportResult = export_precision(prepared.module, trace, samples, options,
                                                out_dir, self.mode, ctx.on_step)
        return result

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        details = dict(result.details.get("precision", {}))
        if MODES[self.mode].calibrated:
            details = {**ctx.calibration().details(), **details}
        return details


class ExecuTorchFp16(Recipe):
    mode = "fp16"
    how = "the model in half precision inside an fp32-I/O wrapper, lowered to XNNPACK fp16"

    def before_export(self, ctx: RequestContext, module: Any, options: ExportOptions
                      ) -> Prepared:
        from edgekit.quant.executorch_precision import prepare_fp16

        half, details = prepare_fp16(module, ctx.example)
        return Prepared(half, details=details)


# ------------------------------------------------------------------------------------------ w8

class ExecuTorchW8(Recipe):
    mode = "w8"
    how = "PT2E XNNPACKQuantizer, dynamic: int8 per-channel weights, activations quantized " \
          "per inference"

    def before_export(self, ctx: RequestContext, module: Any, options: ExportOptions
                      ) -> Prepared:
        from edgekit.quant.executorch_precision import prepare_w8

        ctx.on_step("quantizing for executorch (w8, dynamic)")
        quantized, details = prepare_w8(module, ctx.example)
        return Prepared(quantized, details=details)


class OnnxW8A16(Recipe):
    mode = "w8a16"
    how = "ONNX Runtime static QDQ: int16 activations, int8 per-channel weights, every op"

    def setup(self, ctx: RequestContext) -> None:
        ctx.calibration()

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        from edgekit.quant.onnx import quantize_onnx_file

        cal = ctx.calibration()
        ctx.on_step("quantizing for onnx (w8a16: int16 activations)")
        out = quantize_onnx_file(file, result.inputs[0].name, cal.calib, cal.holdout,
                                 ctx.req.batch, cal.config, "w8a16", ctx.on_step)
        _refresh_onnx_opset(file, result)
        return {**cal.details(), "quantizer": "onnxruntime quantize_static (QInt16 "
                "activations, QInt8 per-channel weights)", **out.details()}


# ---------------------------------------------------------------------------------------- int8

# Formats whose int8 quantizer can give a site int16 activations (`--mixed int16`).
INT16_MIXED = ("onnx",)
WHY_NO_INT16_MIXED: dict[str, str] = {
    "tflite": "edgekit's tflite int8 is litert-torch PT2E, whose quantizer has no int16 "
              "activation config (--quant w8a16 gives 16×8 on every op)",
    "executorch": "XNNPACK has no int16-activation kernels",
    "coreml": "Core ML quantizes activations to 8 bits only",
}


def mixed_for(config: QuantConfig, fmt: str) -> str:
    """`--mixed` resolved for one format: auto is int16 where the format has it, else float."""
    if config.mixed == "auto":
        return "int16" if fmt in INT16_MIXED else "float"
    return config.mixed


class Int8(Recipe):
    """int8 through the target's own quantizer (quant/targets.py QUANTIZERS)."""

    mode = "int8"
    compute_precision = "fp16"

    HOW: ClassVar[dict[str, str]] = {
        "onnx": "ONNX Runtime static QDQ (the fused plan: QLinearConv/QGemm/MatMulInteger)",
        "tflite": "litert-torch PT2EQuantizer, full-integer ops with float islands",
        "executorch": "PT2E XNNPACKQuantizer, static int8",
        "coreml": "PT2E CoreMLQuantizer (W8A8)"}

    @property
    def how(self) -> str:  # type: ignore[override]
        return self.HOW[self.format]

    @property
    def no_dynamic_batch(self) -> str | None:  # type: ignore[override]
        return ("edgekit's PT2E calibration captures a static batch"
                if self.format == "executorch" else None)

    def check(self, req: Any) -> None:
        from edgekit.quant.targets import QUANTIZERS

        method = req.quant_config.calib_method if req.quant_config else "auto"
        offered = QUANTIZERS.get(self.format).methods
        if method != "auto" and method not in offered:
            raise UsageError(f"--calib-method {method} is not available for {self.format}",
                             hint=f"{self.format} offers: {', '.join(offered)} (or auto)")
        mixed = req.quant_config.mixed if req.quant_config else "float"
        if mixed == "int16" and self.format not in INT16_MIXED:
            raise UsageError(f"--mixed int16 is not available for {self.format} int8: "
                             f"{WHY_NO_INT16_MIXED[self.format]}",
                             hint=f"--mixed int16 works for {', '.join(INT16_MIXED)}; "
                                  "--mixed auto takes int16 where a target has it, else float")

    def setup(self, ctx: RequestContext) -> None:
        ctx.repq()

    def source_module(self, ctx: RequestContext) -> Any:
        return ctx.repq()[0]

    def before_export(self, ctx: RequestContext, module: Any, options: ExportOptions
                      ) -> Prepared:
        from edgekit.quant.targets import QUANTIZERS

        cal = ctx.calibration()
        target = QUANTIZERS.get(self.format)()
        ctx.on_step(f"quantizing for {self.format} (int8)")
        prepared = target.before_export(module, ctx.example, cal.calib, cal.holdout,
                                        cal.config, ctx.on_step)
        return Prepared(prepared.module, prepared.converter_kwargs,
                        {**cal.details(), "repq_layernorm": ctx.repq()[1],
                         **prepared.details})

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        from edgekit.quant.targets import QUANTIZERS

        cal = ctx.calibration()
        details: dict[str, Any] = QUANTIZERS.get(self.format)().after_export(
            file, result.inputs[0].name, cal.calib, cal.holdout, ctx.req.batch, cal.config,
            ctx.on_step)
        if self.format == "onnx":
            _refresh_onnx_opset(file, result)
        return details


# ------------------------------------------------------------------------------------ int-only

class _IntegerOnly(Recipe):
    mode = "int-only"
    no_dynamic_batch = "the integer graph is planned for a static batch"

    def setup(self, ctx: RequestContext) -> None:
        ctx.calibration()

    @staticmethod
    def calibration_used(ctx: RequestContext) -> dict[str, Any]:
        cal = ctx.calibration()
        return {"calibration": {"set": cal.calib.name, "samples": len(cal.calib)}}


class IntegerGraph(_IntegerOnly):
    """edgekit's I-ViT integer graph, written bit for bit (.onnx with integer ops, .ekr)."""

    how = "edgekit's integer graph (I-ViT shift arithmetic), bit-exact with its reference"

    def export(self, ctx: RequestContext, prepared: Prepared, trace: Any,
               options: ExportOptions, out_dir: Path) -> ExportResult:
        from edgekit.intonly.export import INTEGER_WRITERS

        integer = ctx.integer(prepared.module)
        result: ExportResult = INTEGER_WRITERS[self.format](
            prepared.module, ctx.example, ctx.calibration().calib.samples, options, out_dir,
            integer=integer["graph"])
        return result

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        return {**self.calibration_used(ctx),
                "scheme": "int8 weights per channel, int8 activations per tensor (absmax or "
                          "percentile), int32 accumulators, dyadic requantization, "
                          "shift-based non-linears",
                "finetune": ctx.integer(None)["finetuned"]}

    def golden(self, ctx: RequestContext) -> tuple[np.ndarray, np.ndarray | None]:
        integer = ctx.integer(None)
        reference = integer["golden_reference"]
        return (ctx.reference if reference is None else reference), integer["exact"]


class TFLiteFullInteger(_IntegerOnly):
    """The target's own integer kernels (TFLite full integer for NPUs and MCUs): judged against
    fp32 like int8, not bit-exact with edgekit's integer graph."""

    how = "litert-torch fp32, ai-edge-quantizer static_wi8_ai8, integer I/O"

    def check(self, req: Any) -> None:
        method = req.quant_config.calib_method if req.quant_config else "auto"
        if method not in ("auto", "percentile", "minmax"):
            raise UsageError(f"--calib-method {method} is not available for full-integer "
                             "tflite",
                             hint="tflite --quant int-only offers: percentile, minmax (or auto)")
        if req.finetune_steps:
            raise UsageError("--finetune-steps fine-tunes edgekit's integer graph (onnx, ekr); "
                             "a tflite int-only file uses TFLite's own integer kernels",
                             hint="export --to tflite without --finetune-steps, or --to onnx,ekr")

    def export(self, ctx: RequestContext, prepared: Prepared, trace: Any,
               options: ExportOptions, out_dir: Path) -> ExportResult:
        from edgekit.exporters.tflite_integer import export_int_only

        method = ctx.calibration().config.calib_method
        ctx.on_step("quantizing for tflite (full integer)")
        result: ExportResult = export_int_only(
            prepared.module, ctx.example, ctx.calibration().calib.samples, options, out_dir,
            ctx.req.integer_io, "percentile" if method in (None, "auto") else method)
        return result

    def after_export(self, ctx: RequestContext, file: Path, result: ExportResult
                     ) -> dict[str, Any]:
        return {**self.calibration_used(ctx),
                "scheme": "int8 activations per tensor, int8 weights per channel, int32 "
                          f"biases, integer I/O ({ctx.req.integer_io}); the target's integer "
                          "kernels",
                **result.details.pop("integer_only")}


# ------------------------------------------------------------------------------------ registry

RECIPES: Registry[Recipe] = Registry("quantization recipe")
for _fmt in ("onnx", "tflite", "executorch"):
    RECIPES.register(f"fp32/{_fmt}", Float32(_fmt))
    RECIPES.register(f"int8/{_fmt}", Int8(_fmt))
RECIPES.register("fp32/coreml", CoreMLPrecision("coreml", "fp32"))
RECIPES.register("fp16/coreml", CoreMLPrecision("coreml", "fp16"))
RECIPES.register("int8/coreml", Int8("coreml"))
RECIPES.register("fp16/onnx", RewriteFile(
    "onnx", "fp16", "fp16 graph with fp32 inputs/outputs; ops without an ONNX Runtime CPU fp16 "
    "kernel stay fp32", "edgekit.quant.onnx_precision:convert_fp16",
    "converting the ONNX graph to fp16", skip_companions={"ort-format": (
        "an ORT-format file is optimized for the kernels of the converting machine: made on "
        "x86 (no fp16 Conv/MatMul/Gemm kernels) it bakes fp32 compute and fp32 weights in "
        "(LeViT-128S: 33 MB instead of 17.5 MB); convert on the device with onnxruntime's "
        "convert_onnx_models_to_ort")}))
RECIPES.register("fp16/executorch", ExecuTorchFp16("executorch"))
RECIPES.register("w8/onnx", RewriteFile(
    "onnx", "w8", "int8 per-channel weights of Conv/Gemm/MatMul + DequantizeLinear, float "
    "activations", "edgekit.quant.onnx_precision:quantize_weights_int8",
    "quantizing ONNX weights to int8 (weight-only)"))
RECIPES.register("w8/executorch", ExecuTorchW8("executorch"))
RECIPES.register("w8/coreml", RewriteFile(
    "coreml", "w8", "coremltools linear_quantize_weights: int8 per-channel symmetric weights, "
    "activations in the compute precision (fp16 by default)",
    "edgekit.exporters.coreml:quantize_weights_int8", "compressing Core ML weights to int8",
    compute_precision="fp16"))
RECIPES.register("w8a16/onnx", OnnxW8A16("onnx"))
for _mode in ("fp16", "w8", "w8a16"):
    RECIPES.register(f"{_mode}/tflite", TFLitePrecision("tflite", _mode))
RECIPES.register("int-only/onnx", IntegerGraph("onnx"))
RECIPES.register("int-only/ekr", IntegerGraph("ekr"))
RECIPES.register("int-only/tflite", TFLiteFullInteger("tflite"))

# Why a format has no recipe for a mode (the README's precision section has the measurements).
WHY_NOT: dict[tuple[str, str], str] = {
    ("coreml", "int-only"): "Core ML has no integer-only graph (its int8 computes activations "
                            "in fp16 or dequantizes inside ops)",
    ("executorch", "int-only"): "ExecuTorch's Arm (Ethos-U) backend needs tosa-tools, whose "
                                "ml-dtypes pin conflicts with onnx's here",
    ("coreml", "w8a16"): "Core ML has no int16 activations (its activation quantization is "
                         "int8/uint8; --quant w8 keeps int8 weights with fp16 activations)",
    ("executorch", "w8a16"): "ExecuTorch's XNNPACK backend has no int16-activation kernels "
                             "(its quantizer offers int8 static and dynamic only)",
}


def implemented(fmt: str) -> tuple[str, ...]:
    """The modes a format has a recipe for, in ladder order."""
    return tuple(m for m in MODES if f"{m}/{fmt}" in RECIPES)


def recipe_for(mode: str, fmt: str) -> Recipe:
    """The recipe, or a UsageError naming why not and what the format can do."""
    if mode not in MODES:
        raise UsageError(f"unknown --quant '{mode}'", hint=f"choose from {', '.join(MODES)}")
    if f"{mode}/{fmt}" not in RECIPES:
        why = WHY_NOT.get((fmt, mode))
        raise UsageError(
            f"--quant {mode} is not available for {fmt}" + (f": {why}" if why else ""),
            hint=f"{fmt} offers --quant {', '.join(implemented(fmt))}"
            + ("; for NPUs and microcontrollers: --to tflite --quant int-only"
               if mode == "int-only" else ""))
    return RECIPES.get(f"{mode}/{fmt}")


def _refresh_onnx_opset(file: Path, result: ExportResult) -> None:
    """ORT's quantizer moves a file with 16-bit Q/DQ to opset 21: the manifest says what the
    written file is."""
    import onnx

    model = onnx.load(str(file), load_external_data=False)
    default_domain = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    result.details["opset"] = default_domain[0]


# ------------------------------------------------------------------- request-level shared work

def calibration_split(config: QuantConfig, data_config: dict[str, Any], on_step: Step
                      ) -> tuple[QuantConfig, Any, np.ndarray]:
    """(config, calibration set, held-out samples). The hold-out (used by `--keep-float auto`
    to measure logit cosine) is never calibrated on."""
    from edgekit.calibration import CalibrationError, calibration_set

    n_holdout = 16
    spec = config.calib if config.calib != "auto" else (
        "fmnist" if data_config.get("dataset") == "fmnist" else "photos")
    on_step(f"loading calibration data ({spec}, {config.calib_n} + {n_holdout} held out)")
    full = calibration_set(spec, data_config, config.calib_n + n_holdout)
    if len(full) < 8:
        raise CalibrationError(f"only {len(full)} calibration images in {config.calib}",
                               hint="give at least 8 (32-128 recommended)")
    if len(full) < config.calib_n + n_holdout:  # a small folder: hold out a quarter
        n_holdout = len(full) // 4
    cut = len(full) - n_holdout
    n_calib = min(cut, config.calib_n)
    calib = type(full)(full.name, full.samples[:n_calib], full.sources[:n_calib])
    return config, calib, full.samples[cut:]


def check_finite(model: Any, calib: Any, on_step: Step) -> list[dict[str, Any]]:
    """The fp32 model on the (finite, already checked) calibration data: NaN/Inf in its output
    is an error naming the first tensor and module that produced it; NaN/Inf inside that does
    not reach the output is returned (for the manifest; each quantizer keeps it float)."""
    from edgekit.calibration import CalibrationError
    from edgekit.quant.ranges import scan_non_finite

    on_step("checking the fp32 model for NaN/Inf on the calibration data")
    scan = scan_non_finite(model, calib.samples)
    if scan.output_non_finite:
        sample = calib.sources[scan.sample] if scan.sample is not None else "?"
        raise CalibrationError(
            f"the fp32 model itself produces NaN/Inf on calibration sample {scan.sample} "
            f"({sample}), first at {scan.describe()}; the sample is finite",
            hint="fix the model or its weights there (overflow, division by zero, log of 0); "
                 "nothing was quantized")
    return [f.to_dict() for f in scan.findings]


def _repq(model: Any, samples: np.ndarray, example: Any, on_step: Step
          ) -> tuple[Any, dict[str, Any]]:
    """RepQ-ViT LayerNorm reparameterization on a copy; kept only if it is an fp32 identity."""
    from edgekit.quant.repq import reparameterize_layernorms

    on_step("RepQ-ViT: post-LayerNorm scale reparameterization")
    candidate = copy.deepcopy(model)
    info = reparameterize_layernorms(candidate, samples, example)
    if info["layernorms"] and info["fp32_max_rel_change"] > 1e-4:
        return model, {**info, "applied": False, "reason": "not an fp32 identity here"}
    return candidate, {**info, "applied": bool(info["layernorms"])}


def _integer_graph(req: Any, source: Any, to_export: Any, golden: Any, cal: Calibration,
                   on_step: Step) -> dict[str, Any]:
    """--quant int-only, once per request: optional QAT, calibration and translation to the
    integer graph, and its reference outputs on the golden inputs (what every integer-only
    runtime must reproduce bit for bit)."""
    import torch

    from edgekit.intonly.export import build_integer_graph
    from edgekit.intonly.graph import run_reference

    finetuned, golden_reference = None, None
    if req.finetune_steps:
        from edgekit.intonly.qat import finetune

        finetuned = finetune(to_export, golden[: req.batch], cal.calib.samples,
                             req.finetune_steps, str(req.finetune_data), source.data_config,
                             seed=req.seed, on_step=on_step)
        with torch.no_grad():
            tuned = to_export(golden)
        golden_reference = (tuned[0] if isinstance(tuned, (tuple, list)) else tuned
                            ).float().numpy()
    on_step("calibrating and translating to integer-only ops")
    graph = build_integer_graph(to_export, golden[: req.batch], cal.calib.samples, cal.holdout)
    x = golden.numpy()
    exact = np.concatenate([run_reference(graph.graph, x[i:i + req.batch], kernels=True)
                            for i in range(0, len(x), req.batch)])
    return {"graph": graph, "finetuned": finetuned, "golden_reference": golden_reference,
            "exact": exact.astype(np.float32)}
