"""The export pipeline, one direction:

source ─► deploy passes ─► [calibrate ─► quantize (int8: quant/targets.py; int-only:
intonly/)] ─► export (per format) ─► golden I/O ─► validate in runtime ─► artifact

The reference outputs come from the *source* model before any pass, so validation measures the
whole chain (passes + converter + runtime) against timm fp32.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import platform
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

import edgekit
from edgekit.artifact import (
    GOLDEN_NAME,
    MANIFEST_NAME,
    Artifact,
    Manifest,
    PassRecord,
    ValidationReport,
    artifact_name,
    save_golden,
    sha256_path,
)
from edgekit.errors import EdgekitError, ExportError, UsageError
from edgekit.exporter import COMPANIONS, EXPORTERS, FORMAT_COMPANIONS, ExportOptions
from edgekit.fsutil import atomic_directory, child_path, safe_component
from edgekit.quant.config import QuantConfig
from edgekit.quant.targets import QUANTIZERS
from edgekit.runtime import DEFAULT_RUNTIME, RUNTIMES
from edgekit.support import check_model
from edgekit.transforms.base import (
    DEFAULT_PASSES,
    FORMAT_PASSES,
    NO_REPARAM_PASSES,
    DeployPipeline,
)
from edgekit.validate import validate_artifact

# Which quantization modes each format implements today (grows with the quant issues).
IMPLEMENTED_QUANTS: dict[str, tuple[str, ...]] = {
    "onnx": ("fp32", "int8", "int-only"), "tflite": ("fp32", "int8", "int-only"),
    "executorch": ("fp32", "int8"),
    "coreml": ("fp32", "fp16", "int8"), "ekr": ("int-only",)}
# Input layouts a format's exporter can produce (NHWC: what mobile camera pipelines feed).
LAYOUTS: dict[str, tuple[str, ...]] = {"tflite": ("nchw", "nhwc")}
# Formats whose files can leave the batch dimension dynamic, and why the others cannot.
DYNAMIC_BATCH_FORMATS = ("onnx", "executorch")
WHY_NO_DYNAMIC_BATCH: dict[str, str] = {
    "tflite": "litert-torch converts static shapes only (export one file per batch with "
              "--batch N)",
    "coreml": "Core ML would need enumerated or ranged shapes, which edgekit does not write "
              "yet (export one model per batch with --batch N)",
    "ekr": "the .ekr runtime plans its arena for one static batch",
}
# Why a format has no such mode (the README's integer-only section has the measurements).
WHY_NOT: dict[tuple[str, str], str] = {
    ("coreml", "int-only"): "Core ML has no integer-only graph (its int8 computes activations "
                            "in fp16 or dequantizes inside ops)",
    ("executorch", "int-only"): "ExecuTorch's Arm (Ethos-U) backend needs tosa-tools, whose "
                                "ml-dtypes pin conflicts with onnx's here",
}


@dataclass(frozen=True)
class ExportRequest:
    model: Any  # a timm name, 'module:function', a Fashion-MNIST config, or an nn.Module
    formats: tuple[str, ...] = ("onnx",)
    quant: str = "fp32"
    out: Path = Path("artifacts")
    weights: Path | None = None
    pretrained: bool = False  # timm's published weights, from the local Hugging Face cache
    opset: int | None = None
    batch: int = 1
    # the batch dimension left dynamic up to this size (ONNX, ExecuTorch); None: static batch
    dynamic_batch: int | None = None
    reparam: bool = True
    seed: int = 0
    n_golden: int = 8
    threads: int | None = None
    layout: str = "nchw"
    compute_precision: str | None = None  # Core ML; default follows --quant
    deployment_target: str = "iOS17"
    quant_config: QuantConfig | None = None  # --quant int8: calibration and quantizer choices
    finetune_steps: int = 0  # --quant int-only: QAT steps before the conversion (intonly/qat.py)
    finetune_data: str | None = None
    # Where to validate beyond the host: qemu://CPU runs the runtimes' aarch64 builds.
    validate_on: tuple[str, ...] = ()
    integer_io: str = "int8"  # --quant int-only --to tflite: the file's input/output type
    example_inputs: Any = None  # an nn.Module source: a tensor, (tensor,) or a shape


@dataclass
class ExportOutcome:
    artifact: Artifact
    seconds: float
    passes: list[PassRecord] = field(default_factory=list)

    @property
    def validation(self) -> ValidationReport | None:
        return self.artifact.manifest.validation


def _check_request(req: ExportRequest) -> None:
    for fmt in req.formats:
        if fmt not in EXPORTERS:
            raise UsageError(f"unknown format '{fmt}'",
                             hint=f"choose from: {', '.join(EXPORTERS.list())}")
        if req.quant not in IMPLEMENTED_QUANTS.get(fmt, ()):
            why = WHY_NOT.get((fmt, req.quant))
            raise UsageError(
                f"--quant {req.quant} is not implemented for {fmt} in this edgekit version"
                + (f": {why}" if why else ""),
                hint=f"use --quant {' or '.join(IMPLEMENTED_QUANTS.get(fmt, ('fp32',)))}"
                + ("; for NPUs and microcontrollers: --to tflite --quant int-only"
                   if req.quant == "int-only" else ""))
    if req.layout != "nchw" and not any(req.layout in LAYOUTS.get(f, ("nchw",))
                                        for f in req.formats):
        raise UsageError(f"--layout {req.layout} is not available for {', '.join(req.formats)}",
                         hint="NHWC input is available for --to tflite")
    if req.batch < 1 or req.batch > 256:
        raise UsageError(f"--batch {req.batch} is out of range", hint="use 1..256")
    if req.dynamic_batch is not None:
        _check_dynamic_batch(req)
    method = req.quant_config.calib_method if req.quant_config else "auto"
    for fmt in req.formats if req.quant == "int8" and method != "auto" else ():
        offered = QUANTIZERS.get(fmt).methods
        if method not in offered:
            raise UsageError(f"--calib-method {method} is not available for {fmt}",
                             hint=f"{fmt} offers: {', '.join(offered)} (or auto)")
    if req.quant == "int-only" and "tflite" in req.formats and \
            method not in ("auto", "percentile", "minmax"):
        raise UsageError(f"--calib-method {method} is not available for full-integer tflite",
                         hint="tflite --quant int-only offers: percentile, minmax (or auto)")
    if req.quant_config is not None and req.quant not in ("int8", "int-only"):
        raise UsageError("calibration options apply to --quant int8 only",
                         hint="add --quant int8, or drop --calib/--calib-n/--calib-method")
    if req.n_golden < 1:
        raise UsageError("need at least one golden input", hint="use --golden 8")
    if req.integer_io not in ("int8", "uint8"):
        raise UsageError(f"--io {req.integer_io}: integer I/O is int8 or uint8")
    if req.integer_io != "int8" and not (req.quant == "int-only" and "tflite" in req.formats):
        raise UsageError("--io applies to --to tflite --quant int-only",
                         hint="drop --io, or export --to tflite --quant int-only")
    if req.finetune_steps and any(f in TARGET_INTEGER_WRITERS for f in req.formats):
        raise UsageError("--finetune-steps fine-tunes edgekit's integer graph (onnx, ekr); a "
                         "tflite int-only file uses TFLite's own integer kernels",
                         hint="export --to tflite without --finetune-steps, or --to onnx,ekr")
    if req.finetune_steps and req.quant != "int-only":
        raise UsageError("--finetune-steps applies to --quant int-only",
                         hint="add --quant int-only, or drop --finetune-steps")
    if req.finetune_steps < 0 or req.finetune_steps > 100_000:
        raise UsageError(f"--finetune-steps {req.finetune_steps} is out of range",
                         hint="use 0..100000 (a few hundred is typical)")
    if req.finetune_steps and not req.finetune_data:
        raise UsageError("--finetune-steps needs --data (the model's training task)",
                         hint="e.g. --finetune-steps 300 --data fmnist")


def _check_dynamic_batch(req: ExportRequest) -> None:
    assert req.dynamic_batch is not None
    if not 2 <= req.dynamic_batch <= 256:
        raise UsageError(f"--max-batch {req.dynamic_batch} is out of range", hint="use 2..256")
    if req.batch != 1:
        raise UsageError("--batch N fixes the batch; --dynamic-batch leaves it open",
                         hint="pass one of them")
    for fmt in req.formats:
        if fmt not in DYNAMIC_BATCH_FORMATS:
            raise UsageError(f"--dynamic-batch is not available for {fmt}: "
                             f"{WHY_NO_DYNAMIC_BATCH.get(fmt, 'static shapes only')}",
                             hint=f"--dynamic-batch works for {', '.join(DYNAMIC_BATCH_FORMATS)}")
    if req.quant == "int-only":
        raise UsageError("--dynamic-batch with --quant int-only: the integer graph is planned "
                         "for a static batch", hint="use --batch N")
    if req.quant == "int8" and "executorch" in req.formats:
        raise UsageError("--dynamic-batch with --quant int8 --to executorch: edgekit's PT2E "
                         "calibration captures a static batch",
                         hint="use --batch N, or --dynamic-batch with --to onnx or fp32")


def _versions(extra: dict[str, str]) -> dict[str, str]:
    import timm
    import torch

    v = {"edgekit": edgekit.__version__, "python": platform.python_version(),
         "torch": torch.__version__, "timm": timm.__version__}
    v.update(extra)
    return v


def export_model(req: ExportRequest, on_step: Callable[[str], None] = lambda s: None
                 ) -> list[ExportOutcome]:
    import torch

    from edgekit.data import golden_inputs, golden_kinds
    from edgekit.models.source import load_source

    _check_request(req)
    out_root = Path(req.out)
    if isinstance(req.model, str):
        on_step(f"loading {req.model}")
        source = load_source(req.model, weights=req.weights, seed=req.seed,
                             pretrained=req.pretrained)
    else:
        from edgekit.models.source import source_from_module

        if req.weights is not None or req.pretrained:
            raise UsageError("weights=/pretrained= apply to a model name; a module carries "
                             "its own",
                             hint="load the checkpoint into the module first")
        source = source_from_module(req.model, req.example_inputs)
        on_step(f"using {source.spec}")
    safe_component(source.name, what="model name")
    finals = {fmt: child_path(out_root, artifact_name(source.name, req.quant, fmt),
                              what="artifact name") for fmt in req.formats}

    # whole batches; a dynamic batch is validated at 1 and at its bound, with a batch-2 trace
    n = -(-max(req.n_golden, req.dynamic_batch or 1) // req.batch) * req.batch
    on_step(f"preparing {n} golden inputs (real photos + noise)")
    golden = torch.from_numpy(golden_inputs(source.data_config, n, seed=req.seed))
    kinds = golden_kinds(source.data_config, n)
    quant = None
    if req.quant in ("int8", "int-only"):
        quant = _calibration(req.quant_config or QuantConfig(), source.data_config, on_step)
    with torch.no_grad():
        ref = source.model(golden)
    ref = ref[0] if isinstance(ref, (tuple, list)) else ref
    reference = ref.detach().float().numpy()

    model = source.model
    names = DEFAULT_PASSES if req.reparam else NO_REPARAM_PASSES
    check = torch.cat([golden[:1], golden[-1:]])
    passes = DeployPipeline(names).run(model, check, on_pass=lambda p: on_step(f"pass {p}"))

    flops = _count_flops(model, golden[: req.batch])
    non_finite: list[dict[str, Any]] = []
    if quant is not None:
        non_finite = _check_finite(model, quant[1], on_step)
    quant_model, repq = model, None
    if quant is not None and quant[0].repq and req.quant == "int8":
        quant_model, repq = _repq(model, quant[1].samples, golden[: req.batch], on_step)
    outcomes: list[ExportOutcome] = []
    failures: dict[str, EdgekitError] = {}
    integer: dict[str, Any] = {}  # int-only: one integer graph for every format of the request
    for fmt in req.formats:
        try:
            outcomes.append(_export_format(
                fmt, req, source, finals[fmt], golden, kinds, reference, check, model,
                quant_model, quant, repq, non_finite, passes, flops, on_step, integer))
        except EdgekitError as exc:
            if len(req.formats) == 1:
                raise
            failures[fmt] = exc
            on_step(f"{fmt} failed: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a converter bug must not lose other formats
            if len(req.formats) == 1:
                raise
            failures[fmt] = ExportError(f"{fmt}: {type(exc).__name__}: {str(exc)[:300]}",
                                        hint="run `edgekit export` for that format alone "
                                             "with --debug for the traceback")
            on_step(f"{fmt} failed: {type(exc).__name__}")
    if failures:
        raise ExportIncomplete(outcomes, failures)
    return outcomes


def _export_format(fmt: str, req: ExportRequest, source: Any, final: Path, golden: Any,
                   kinds: tuple[str, ...], reference: np.ndarray, check: Any, model: Any,
                   quant_model: Any,
                   quant: tuple[QuantConfig, Any, np.ndarray] | None,
                   repq: dict[str, Any] | None, non_finite: list[dict[str, Any]],
                   passes: list[PassRecord], flops: int | None,
                   on_step: Callable[[str], None],
                   integer: dict[str, Any] | None = None) -> ExportOutcome:
    """One format of an export request: quantize, convert, golden I/O, validate, commit."""
    import time


    started = time.perf_counter()
    exporter = EXPORTERS.get(fmt)()
    runtime_name = DEFAULT_RUNTIME[fmt]
    runtime_cls = RUNTIMES.get(runtime_name)
    on_step(f"exporting {fmt}")
    layout = req.layout if req.layout in LAYOUTS.get(fmt, ("nchw",)) else "nchw"
    options = ExportOptions(opset=req.opset, layout=layout,
                            compute_precision=req.compute_precision or (
                                "fp16" if req.quant == "int8" else req.quant),
                            deployment_target=req.deployment_target,
                            dynamic_batch=req.dynamic_batch)
    # the trace example: torch.export specializes a dynamic dimension traced at size 1
    trace = golden[:2] if req.dynamic_batch else golden[: req.batch]
    on_step(f"checking {fmt} op support")
    (support,) = check_model(model, golden[: req.batch], (fmt,))
    with atomic_directory(final) as tmp:
        # Every export flow gets a fresh copy: converters may mutate the module.
        quant_details: dict[str, Any] = {}
        golden_reference = None  # a fine-tuned model is validated against itself in fp32
        to_export = copy.deepcopy(quant_model if req.quant == "int8" else model)
        format_passes = DeployPipeline(FORMAT_PASSES.get(fmt, ()) if req.reparam else ()
                                       ).run(to_export, check,
                                             on_pass=lambda p: on_step(f"pass {p}"))
        if quant is not None and req.quant == "int8":
            qconfig, calib, holdout = quant
            target = QUANTIZERS.get(fmt)()
            on_step(f"quantizing for {fmt} (int8)")
            prepared = target.before_export(to_export, golden[: req.batch], calib, holdout,
                                            qconfig, on_step)
            to_export = prepared.module
            options = dataclasses.replace(options, converter_kwargs=prepared.converter_kwargs)
            quant_details = {"config": qconfig.to_dict(), "calibration": {
                "set": calib.name, "samples": len(calib), "holdout": len(holdout)},
                "repq_layernorm": repq,
                **({"non_finite_fp32": non_finite} if non_finite else {}),
                **prepared.details}
        try:
            if req.quant == "int-only" and fmt in TARGET_INTEGER_WRITERS:
                # the target's own integer kernels (TFLite: full-integer for NPUs and MCUs),
                # judged against fp32 like int8, not bit-exact with edgekit's integer graph
                assert quant is not None
                on_step(f"quantizing for {fmt} (full integer)")
                result = TARGET_INTEGER_WRITERS[fmt](to_export, golden[: req.batch],
                                                     quant[1].samples, options, tmp, req)
                quant_details = {"calibration": {"set": quant[1].name,
                                                 "samples": len(quant[1])},
                                 "scheme": "int8 activations per tensor, int8 weights per "
                                           "channel, int32 biases, integer I/O "
                                           f"({req.integer_io}); the target's integer kernels",
                                 **result.details.pop("integer_only")}
            elif req.quant == "int-only":
                assert quant is not None
                if integer is None:
                    integer = {}
                if not integer:
                    integer.update(_integer_graph(req, source, to_export, golden, quant,
                                                  on_step))
                golden_reference = integer["golden_reference"]
                from edgekit.intonly.export import INTEGER_WRITERS

                result = INTEGER_WRITERS[fmt](to_export, golden[: req.batch], quant[1].samples,
                                              options, tmp, integer=integer["graph"])
                quant_details = {"calibration": {"set": quant[1].name,
                                                 "samples": len(quant[1])},
                                 "scheme": "int8 weights per channel, int8 activations "
                                           "per tensor (absmax or percentile), int32 "
                                           "accumulators, dyadic requantization, "
                                           "shift-based non-linears",
                                 "finetune": integer["finetuned"]}
            else:
                result = exporter.export(to_export, trace, options, tmp)
        except ExportError as exc:
            if support.unsupported:
                exc.message += (f"; ops without a {fmt} lowering: " + ", ".join(
                    f"{op}×{n}" for op, n in support.unsupported.items()))
            raise
        if quant is not None and req.quant == "int8":
            qconfig, calib, holdout = quant
            quant_details.update(target.after_export(
                tmp / result.file, result.inputs[0].name, calib, holdout, req.batch,
                qconfig, on_step))
        companions = []
        for kind in FORMAT_COMPANIONS.get(fmt, ()):
            on_step(f"writing the {kind} companion of {result.file}")
            info = COMPANIONS.get(kind).write(str(tmp / result.file))  # our fresh file
            companions.append({**info, "sha256": sha256_path(tmp / info["file"]),
                               "size_bytes": _size(tmp / info["file"])})
        golden_in = golden.numpy()
        if result.inputs[0].layout == "NHWC":
            golden_in = np.ascontiguousarray(golden_in.transpose(0, 2, 3, 1))
        save_golden(tmp / GOLDEN_NAME, {result.inputs[0].name: golden_in},
                    {result.outputs[0].name: reference if golden_reference is None
                     else golden_reference}, kinds,
                    exact={result.outputs[0].name: integer["exact"]}
                    if req.quant == "int-only" and integer
                    and fmt not in TARGET_INTEGER_WRITERS else None)
        manifest = Manifest(
            format=fmt, file=result.file, sha256=sha256_path(tmp / result.file),
            size_bytes=_size(tmp / result.file), model=source.name,
            weights=source.weights, quant=req.quant, inputs=result.inputs,
            outputs=result.outputs, passes=(*passes, *format_passes),
            versions=_versions({**result.versions, runtime_name: runtime_cls.version()}),
            preprocessing=source.data_config,
            exporter={"format": fmt, "batch": None if req.dynamic_batch else req.batch,
                      "reparam": req.reparam,
                      "spec": source.spec, **result.details,
                      "support": support.to_dict(),
                      **({"companions": companions} if companions else {}),
                      **({"quantization": quant_details} if quant_details else {})},
            created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), flops=flops)
        (tmp / MANIFEST_NAME).write_text(manifest.to_json())
        on_step(f"validating {fmt} in {runtime_name}")
        report = validate_artifact(Artifact(tmp, manifest), runtime=runtime_name,
                                   threads=req.threads)
        manifest = manifest.with_validation(report)
        (tmp / MANIFEST_NAME).write_text(manifest.to_json())
        if req.validate_on and fmt in _DEVICE_VALIDATABLE:
            manifest = _validate_on_devices(tmp, manifest, req.validate_on, on_step)
            (tmp / MANIFEST_NAME).write_text(manifest.to_json())
    return ExportOutcome(Artifact(final, manifest), time.perf_counter() - started,
                         [*passes, *format_passes])


def _tflite_int_only(model: Any, example: Any, samples: Any, options: ExportOptions,
                     out_dir: Path, req: ExportRequest) -> Any:
    from edgekit.exporters.tflite_integer import export_int_only

    method = req.quant_config.calib_method if req.quant_config else "auto"
    return export_int_only(model, example, samples, options, out_dir, req.integer_io,
                           "percentile" if method in (None, "auto") else method)


# int-only formats written by the target's own integer quantization instead of edgekit's
# integer graph (which .onnx and .ekr carry bit for bit)
TARGET_INTEGER_WRITERS: dict[str, Callable[..., Any]] = {"tflite": _tflite_int_only}


def _integer_graph(req: ExportRequest, source: Any, to_export: Any, golden: Any,
                   quant: tuple[QuantConfig, Any, np.ndarray], on_step: Callable[[str], None]
                   ) -> dict[str, Any]:
    """--quant int-only, once per request: optional QAT, calibration and translation to the
    integer graph, and its reference outputs on the golden inputs (what every integer-only
    runtime must reproduce bit for bit)."""
    import torch

    from edgekit.intonly.export import build_integer_graph
    from edgekit.intonly.graph import run_reference

    finetuned, golden_reference = None, None
    if req.finetune_steps:
        from edgekit.intonly.qat import finetune

        finetuned = finetune(to_export, golden[: req.batch], quant[1].samples,
                             req.finetune_steps, str(req.finetune_data), source.data_config,
                             seed=req.seed, on_step=on_step)
        with torch.no_grad():
            tuned = to_export(golden)
        golden_reference = (tuned[0] if isinstance(tuned, (tuple, list)) else tuned
                            ).float().numpy()
    on_step("calibrating and translating to integer-only ops")
    graph = build_integer_graph(to_export, golden[: req.batch], quant[1].samples, quant[2])
    x = golden.numpy()
    exact = np.concatenate([run_reference(graph.graph, x[i:i + req.batch], kernels=True)
                            for i in range(0, len(x), req.batch)])
    return {"graph": graph, "finetuned": finetuned, "golden_reference": golden_reference,
            "exact": exact.astype(np.float32)}


_DEVICE_VALIDATABLE = {"onnx", "tflite", "executorch"}


def _validate_on_devices(tmp: Path, manifest: Manifest, devices: tuple[str, ...],
                         on_step: Callable[[str], None]) -> Manifest:
    """The golden check again on each device (`qemu://CPU`), recorded per device in the
    manifest's `device_validation`; the artifact is validated only if every device agrees."""
    from edgekit.qemu import QemuDevice
    from edgekit.qemu.run import validate_on

    results: dict[str, Any] = {}
    for url in devices:
        dev = QemuDevice.from_url(url)
        on_step(f"validating {manifest.format} on {dev.url} (aarch64 runtime, emulated)")
        results[dev.url] = validate_on(dev, Artifact(tmp, manifest)).__dict__
    failed = [u for u, r in results.items() if r["validated"] is not True]
    manifest = replace(manifest, exporter={**manifest.exporter, "device_validation": results})
    if failed and manifest.validation is not None and manifest.validation.validated is True:
        first = results[failed[0]]
        manifest = manifest.with_validation(replace(
            manifest.validation, validated=False,
            reason=f"on {failed[0]}: {first['reason']} (host: validated)"))
    return manifest


class ExportIncomplete(ExportError):
    """Some formats of a `--to a,b,c` export failed; the others were written and validated."""

    def __init__(self, outcomes: list[ExportOutcome], failures: dict[str, EdgekitError]) -> None:
        self.outcomes, self.failures = outcomes, failures
        done = ", ".join(o.artifact.manifest.format for o in outcomes) or "none"
        super().__init__("; ".join(f"{fmt} failed: {exc.render()}"
                                   for fmt, exc in failures.items())
                         + f" — written: {done}",
                         hint="the written artifacts are complete and validated; fix or drop "
                              "the failing format")


def _check_finite(model: Any, calib: Any, on_step: Callable[[str], None]
                  ) -> list[dict[str, Any]]:
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


def _calibration(config: QuantConfig, data_config: dict[str, Any], on_step: Callable[[str], None]
                 ) -> tuple[QuantConfig, Any, np.ndarray]:
    """(config, calibration set, held-out samples) for the int8 quantizers. The hold-out (used
    by `--keep-float auto` to measure logit cosine) is never calibrated on."""
    from edgekit.calibration import calibration_set

    n_holdout = 16
    spec = config.calib if config.calib != "auto" else (
        "fmnist" if data_config.get("dataset") == "fmnist" else "photos")
    on_step(f"loading calibration data ({spec}, {config.calib_n} + {n_holdout} held out)")
    full = calibration_set(spec, data_config, config.calib_n + n_holdout)
    if len(full) < 8:
        from edgekit.calibration import CalibrationError

        raise CalibrationError(f"only {len(full)} calibration images in {config.calib}",
                               hint="give at least 8 (32-128 recommended)")
    if len(full) < config.calib_n + n_holdout:  # a small folder: hold out a quarter
        n_holdout = len(full) // 4
    cut = len(full) - n_holdout
    n_calib = min(cut, config.calib_n)
    calib = type(full)(full.name, full.samples[:n_calib], full.sources[:n_calib])
    return config, calib, full.samples[cut:]


def _repq(model: Any, samples: np.ndarray, example: Any, on_step: Callable[[str], None]
          ) -> tuple[Any, dict[str, Any]]:
    """RepQ-ViT LayerNorm reparameterization on a copy; kept only if it is an fp32 identity."""
    from edgekit.quant.repq import reparameterize_layernorms

    on_step("RepQ-ViT: post-LayerNorm scale reparameterization")
    candidate = copy.deepcopy(model)
    info = reparameterize_layernorms(candidate, samples, example)
    if info["layernorms"] and info["fp32_max_rel_change"] > 1e-4:
        return model, {**info, "applied": False, "reason": "not an fp32 identity here"}
    return candidate, {**info, "applied": bool(info["layernorms"])}


def _count_flops(model: Any, example: Any) -> int | None:
    """Forward FLOPs (2 per multiply-add) by torch's FlopCounterMode; None if it cannot run."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(example)
        return int(counter.get_total_flops())
    except Exception:  # noqa: BLE001 - a missing count only disables a bench gate
        return None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def passed(report: ValidationReport | None) -> bool:
    """Validated, or as validated as this platform allows (Core ML structure on Linux)."""
    return report is not None and report.validated is not False


def summarize(outcome: ExportOutcome) -> dict[str, Any]:
    m = outcome.artifact.manifest
    v = m.validation
    delegation = m.exporter.get("delegation") or {}
    return {
        "artifact": str(outcome.artifact.path),
        "format": m.format, "model": m.model, "quant": m.quant,
        "size_mb": round(m.size_bytes / 2**20, 3), "export_s": round(outcome.seconds, 2),
        "passes": {p.name: p.changed for p in m.passes},
        "validated": v.validated if v else False,
        "ok": passed(v),
        "delegated_share": delegation.get("share"),
        "not_delegated": delegation.get("not_delegated"),
        "cosine": v.cosine if v else None, "max_rel": v.max_rel if v else None,
        "top1_agreement": v.top1_agreement if v else None,
        "sqnr_db": v.sqnr_db if v else None, "reason": v.reason if v else "",
        "device_validation": {url: {"validated": r["validated"], "cosine": r["cosine"],
                                    "runtime": r["runtime"]}
                              for url, r in m.exporter.get("device_validation", {}).items()},
    }


