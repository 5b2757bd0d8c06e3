"""The export pipeline, one direction:

source ─► deploy passes ─► per format, its recipe for --quant (quant/recipes.py: setup once
per request, before_export, export, after_export) ─► golden I/O ─► validate in runtime ─► artifact

The reference outputs come from the *source* model before any pass, so validation measures the
whole chain (passes + converter + runtime) against timm fp32.
"""

from __future__ import annotations

import copy
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
from edgekit.layers.modules import (
    LAYER_RECORDERS,
    LAYERS_NAME,
    LayerMap,
    LayerRecorder,
    module_table,
    nearest_in,
)
from edgekit.quant.config import QuantConfig
from edgekit.quant.modes import MODES
from edgekit.quant.recipes import (
    Recipe,
    RequestContext,
    calibration_split,
    implemented,
    recipe_for,
)
from edgekit.runtime import DEFAULT_RUNTIME, RUNTIMES
from edgekit.support import check_model
from edgekit.transforms.base import (
    DEFAULT_PASSES,
    FORMAT_PASSES,
    NO_REPARAM_PASSES,
    DeployPipeline,
)
from edgekit.validate import validate_artifact

# Which quantization modes each format has a recipe for (quant/recipes.py RECIPES).
IMPLEMENTED_QUANTS: dict[str, tuple[str, ...]] = {f: implemented(f) for f in EXPORTERS.list()}
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
        recipe_for(req.quant, fmt).check(req)
    if req.layout != "nchw" and not any(req.layout in LAYOUTS.get(f, ("nchw",))
                                        for f in req.formats):
        raise UsageError(f"--layout {req.layout} is not available for {', '.join(req.formats)}",
                         hint="NHWC input is available for --to tflite")
    if req.batch < 1 or req.batch > 256:
        raise UsageError(f"--batch {req.batch} is out of range", hint="use 1..256")
    if req.dynamic_batch is not None:
        _check_dynamic_batch(req)
    if req.quant_config is not None and not MODES[req.quant].calibrated:
        raise UsageError(f"calibration options apply to calibrated modes "
                         f"({', '.join(m for m in MODES if MODES[m].calibrated)}), not "
                         f"--quant {req.quant}",
                         hint="add --quant int8, or drop --calib/--calib-n/--calib-method")
    if req.n_golden < 1:
        raise UsageError("need at least one golden input", hint="use --golden 8")
    if req.integer_io not in ("int8", "uint8"):
        raise UsageError(f"--io {req.integer_io}: integer I/O is int8 or uint8")
    if req.integer_io != "int8" and not (req.quant == "int-only" and "tflite" in req.formats):
        raise UsageError("--io applies to --to tflite --quant int-only",
                         hint="drop --io, or export --to tflite --quant int-only")
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
    for fmt in req.formats:
        why = recipe_for(req.quant, fmt).no_dynamic_batch
        if why:
            raise UsageError(f"--dynamic-batch with --quant {req.quant} --to {fmt}: {why}",
                             hint="use --batch N, or --dynamic-batch with another mode or "
                                  "format")


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
    with torch.no_grad():
        ref = source.model(golden)
    ref = ref[0] if isinstance(ref, (tuple, list)) else ref
    reference = ref.detach().float().numpy()

    model = source.model
    source_modules = module_table(model)  # before the passes: the paths the user knows
    names = DEFAULT_PASSES if req.reparam else NO_REPARAM_PASSES
    check = torch.cat([golden[:1], golden[-1:]])
    passes = DeployPipeline(names).run(model, check, on_pass=lambda p: on_step(f"pass {p}"))
    flops = _count_flops(model, golden[: req.batch])
    ctx = RequestContext(req, source, golden, reference, check, model, on_step)
    ctx.source_modules = source_modules
    recipes = {fmt: recipe_for(req.quant, fmt) for fmt in req.formats}
    for recipe in recipes.values():  # request-level work (calibration) fails before any file
        recipe.setup(ctx)
    outcomes: list[ExportOutcome] = []
    failures: dict[str, EdgekitError] = {}
    for fmt, recipe in recipes.items():
        try:
            outcomes.append(_export_format(fmt, recipe, ctx, finals[fmt], kinds, passes, flops))
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


def _export_format(fmt: str, recipe: Recipe, ctx: RequestContext, final: Path,
                   kinds: tuple[str, ...], passes: list[PassRecord], flops: int | None
                   ) -> ExportOutcome:
    """One format of an export request through its recipe: prepare, convert, rewrite, golden
    I/O, validate, commit."""
    import time

    req, golden, on_step = ctx.req, ctx.golden, ctx.on_step
    started = time.perf_counter()
    runtime_name = DEFAULT_RUNTIME[fmt]
    runtime_cls = RUNTIMES.get(runtime_name)
    on_step(f"exporting {fmt}")
    layout = req.layout if req.layout in LAYOUTS.get(fmt, ("nchw",)) else "nchw"
    options = ExportOptions(opset=req.opset, layout=layout,
                            compute_precision=req.compute_precision or recipe.compute_precision,
                            deployment_target=req.deployment_target,
                            dynamic_batch=req.dynamic_batch)
    # the trace example: torch.export specializes a dynamic dimension traced at size 1
    trace = golden[:2] if req.dynamic_batch else golden[: req.batch]
    on_step(f"checking {fmt} op support")
    (support,) = check_model(ctx.model, golden[: req.batch], (fmt,))
    with atomic_directory(final) as tmp:
        # Every export flow gets a fresh copy: converters may mutate the module.
        to_export = copy.deepcopy(recipe.source_module(ctx))
        format_passes = DeployPipeline(FORMAT_PASSES.get(fmt, ()) if req.reparam else ()
                                       ).run(to_export, ctx.check,
                                             on_pass=lambda p: on_step(f"pass {p}"))
        prepared = recipe.before_export(ctx, to_export, options)
        try:
            result = recipe.export(ctx, prepared, trace, options, tmp)
        except ExportError as exc:
            if support.unsupported:
                exc.message += (f"; ops without a {fmt} lowering: " + ", ".join(
                    f"{op}×{n}" for op, n in support.unsupported.items()))
            raise
        recorder = LAYER_RECORDERS.get(fmt) if fmt in LAYER_RECORDERS else None
        layer_snapshot = recorder.snapshot(tmp / result.file) if recorder else None
        quant_details = {"mode": req.quant, "recipe": f"{req.quant}/{fmt}",
                         "how": recipe.how, **prepared.details,
                         **recipe.after_export(ctx, tmp / result.file, result)}
        companions: list[dict[str, Any]] = []
        skipped = {k: why for k, why in recipe.skip_companions.items()
                   if k in FORMAT_COMPANIONS.get(fmt, ())}
        for kind in (k for k in FORMAT_COMPANIONS.get(fmt, ()) if k not in skipped):
            on_step(f"writing the {kind} companion of {result.file}")
            info = COMPANIONS.get(kind).write(str(tmp / result.file))  # our fresh file
            companions.append({**info, "sha256": sha256_path(tmp / info["file"]),
                               "size_bytes": _size(tmp / info["file"])})
        layers = None
        if recorder is not None:
            on_step(f"mapping {fmt} ops to modules")
            layers = _record_layers(fmt, recorder, tmp, result.file, layer_snapshot, ctx)
        golden_in = golden.numpy()
        if result.inputs[0].layout == "NHWC":
            golden_in = np.ascontiguousarray(golden_in.transpose(0, 2, 3, 1))
        golden_out, exact = recipe.golden(ctx)
        save_golden(tmp / GOLDEN_NAME, {result.inputs[0].name: golden_in},
                    {result.outputs[0].name: golden_out}, kinds,
                    exact=None if exact is None else {result.outputs[0].name: exact})
        manifest = Manifest(
            format=fmt, file=result.file, sha256=sha256_path(tmp / result.file),
            size_bytes=_size(tmp / result.file), model=ctx.source.name,
            weights=ctx.source.weights, quant=req.quant, inputs=result.inputs,
            outputs=result.outputs, passes=(*passes, *format_passes),
            versions=_versions({**result.versions, runtime_name: runtime_cls.version()}),
            preprocessing=ctx.source.data_config,
            exporter={"format": fmt, "batch": None if req.dynamic_batch else req.batch,
                      "reparam": req.reparam,
                      "spec": ctx.source.spec, **result.details,
                      "support": support.to_dict(),
                      **({"companions": companions} if companions else {}),
                      **({"companions_skipped": skipped} if skipped else {}),
                      **({"layers": layers} if layers else {}),
                      "quantization": quant_details},
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


def _record_layers(fmt: str, recorder: LayerRecorder, art_dir: Path, file: str,
                   snapshot: Any, ctx: RequestContext) -> dict[str, Any]:
    """layers.json: the source module of every op (edgekit profile / diff read it); the
    manifest's summary of it."""
    source = ctx.source_modules
    deployed = module_table(ctx.model)
    ops, counts = recorder.record(art_dir / file, snapshot, set(source) | set(deployed))
    # A module the deploy passes made (FastViT's `reparam_conv`) is named by its nearest
    # ancestor in the source model, the path the user knows.
    lifted = {k: nearest_in(p, source) for k, p in ops.items()}
    counts["lifted_to_source"] = sum(lifted[k] != p for k, p in ops.items())
    LayerMap(fmt, recorder.key, lifted, source,
             tuple(p for p in deployed if p not in source), counts).save(art_dir)
    return {"file": LAYERS_NAME, "key": recorder.key, "ops": len(ops), "resolved": counts}


# tests and benches use the calibration split directly
_calibration = calibration_split

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


