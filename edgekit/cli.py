"""The `edgekit` command line. User errors print one paragraph and exit non-zero; --debug
shows tracebacks. Every reporting command takes --json (machine output on stdout only)."""

from __future__ import annotations

import contextlib
import json
import math
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from edgekit.errors import EdgekitError, UsageError, ValidationFailed
from edgekit.quant.modes import MIXED_CHOICES, QUANT_MODES

if TYPE_CHECKING:
    from edgekit.artifact import ValidationReport


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(_jsonable(obj), indent=2))


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@contextlib.contextmanager
def _progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich status line on stderr for steps that take seconds; silent with --json."""
    if not enabled:
        yield lambda s: None
        return
    console = _console()
    with console.status("starting") as status:
        def step(msg: str) -> None:
            console.log(msg)
            status.update(msg)

        yield step


class EdgekitGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        debug = bool(ctx.params.get("debug"))
        try:
            return super().invoke(ctx)
        except EdgekitError as exc:
            if debug:
                traceback.print_exc()
            click.echo(exc.render(), err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; nothing partial was left at the final path", err=True)
            ctx.exit(130)


@click.group(cls=EdgekitGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="edgekit")
def cli(debug: bool) -> None:
    """edgekit: efficient ViTs from PyTorch to phones and boards."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--family", default=None, help="Only this family.")
def models(as_json: bool, family: str | None) -> None:
    """Supported families and their timm models, with status."""
    from edgekit.models.families import FAMILIES
    from edgekit.models.status import model_status

    status = model_status()
    rows = []
    import timm

    for fam_name in FAMILIES.list():
        if family and fam_name != family:
            continue
        fam = FAMILIES.get(fam_name)
        names = sorted({n for p in fam.patterns for n in timm.list_models(p)})
        if fam_name == "levit":
            names = [n for n in names if not n.startswith("levit_conv_")]
        for name in names:
            st = status.get(name, {})
            rows.append({"model": name, "family": fam_name, "deploy": fam.deploy_hooks,
                         "tested": name == fam.smallest, **st})
    from edgekit.models.fmnist import SMALL_CONFIGS, training_record

    for name in SMALL_CONFIGS.list():  # trained here on Fashion-MNIST (accuracy claims)
        cfg = SMALL_CONFIGS.get(name)
        if family and cfg.family != family:
            continue
        rec = training_record(cfg) or {}
        rows.append({"model": name, "family": cfg.family, "deploy": "small config",
                     "tested": True, "trained_on": "fmnist",
                     "fp32_top1": rec.get("fp32_top1_torch"),
                     "note": (f"Fashion-MNIST top-1 {rec['fp32_top1_torch']} %"
                              if rec else "no checkpoint: python bench/train_fmnist.py")})
    if as_json:
        _emit_json(rows)
        return
    from rich.table import Table

    table = Table(title="edgekit models (timm)")
    for col in ("model", "family", "onnx", "cosine", "note"):
        table.add_column(col)
    for r in rows:
        onnx_state = r.get("onnx", "not run")
        table.add_row(r["model"], r["family"], ("tested, " if r["tested"] else "") + onnx_state,
                      f"{r['cosine']:.7f}" if isinstance(r.get("cosine"), float) else "",
                      r.get("note", ""))
    from rich.console import Console

    Console().print(table)


@cli.command()
@click.option("--json", "as_json", is_flag=True)
def doctor(as_json: bool) -> None:
    """Installed exporters/runtimes, versions, and how to get what is missing."""
    from edgekit.doctor import diagnose

    with contextlib.redirect_stdout(sys.stderr):  # SDK import banners must not corrupt --json
        report = diagnose()
    if as_json:
        _emit_json(report)
        return
    for section in ("exporters", "runtimes", "packages", "tools", "kernels", "arm-device"):
        click.echo(f"{section}:")
        for row in report[section]:
            mark = "ok " if row["ok"] else "-- "
            extra = f"  ({row['fix']})" if not row["ok"] and row.get("fix") else ""
            click.echo(f"  {mark}{row['name']:<16} {row.get('version') or ''}{extra}")


def _split_formats(value: str, quant: str | None = None) -> tuple[str, ...]:
    """A comma list of formats; `all` = every format that implements `quant` (every format
    when no quantization mode is in play)."""
    from edgekit.exporter import EXPORTERS
    from edgekit.pipeline import IMPLEMENTED_QUANTS

    parts = tuple(p.strip() for p in value.split(",") if p.strip())
    if parts == ("all",):
        return tuple(f for f in EXPORTERS.list()
                     if quant is None or quant in IMPLEMENTED_QUANTS.get(f, ()))
    return parts


@cli.command()
@click.argument("model")
@click.option("--to", "to", default="onnx", show_default=True,
              help="Format(s): onnx, a comma list, or all.")
@click.option("--quant", default="fp32", show_default=True, type=click.Choice(QUANT_MODES),
              help="fp32, fp16, w8 (int8 weights, float activations), w8a16 (int16 "
                   "activations, int8 weights), int8, int-only (integer graph).")
@click.option("--weights", type=click.Path(path_type=Path), default=None,
              help="model.safetensors, pytorch_model.bin or a .pth/.pt checkpoint (loaded "
                   "with weights_only=True; state_dict/model/EMA wrappers and module. "
                   "prefixes are understood).")
@click.option("--pretrained", is_flag=True,
              help="timm's pretrained weights, from the local Hugging Face cache only "
                   "(HF_HOME/HF_HUB_CACHE); a name may carry a tag: levit_128s.fb_dist_in1k.")
@click.option("--out", type=click.Path(path_type=Path), default=Path("artifacts"),
              show_default=True)
@click.option("--opset", type=int, default=None, help="ONNX opset (default: exporter's).")
@click.option("--batch", type=int, default=1, show_default=True, help="Static batch size.")
@click.option("--dynamic-batch", is_flag=True,
              help="Leave the batch dimension dynamic (onnx, executorch), validated at batch "
                   "1 and --max-batch.")
@click.option("--max-batch", type=int, default=8, show_default=True,
              help="With --dynamic-batch: the largest batch (ExecuTorch's upper bound).")
@click.option("--no-reparam", is_flag=True, help="Skip reparameterization/folding passes.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for live weights.")
@click.option("--golden", "n_golden", type=int, default=8, show_default=True,
              help="Validation inputs (real photos + 25 % seeded noise).")
@click.option("--threads", type=int, default=None, help="Runtime threads for validation.")
@click.option("--layout", type=click.Choice(["nchw", "nhwc"]), default="nchw",
              show_default=True, help="Image input layout of the file (nhwc: TFLite).")
@click.option("--compute-precision", type=click.Choice(["fp16", "fp32"]), default=None,
              help="Core ML compute precision (default: follows --quant).")
@click.option("--deployment-target", default="iOS17", show_default=True,
              help="Core ML minimum deployment target (iOS16, iOS17, iOS18, macOS14, ...).")
@click.option("--calib", default=None,
              help="int8 calibration images: a folder, `photos` (built-in) or `fmnist` "
                   "(default: the model's domain).")
@click.option("--calib-n", type=int, default=None, help="Calibration samples (default 64).")
@click.option("--calib-method", default=None,
              type=click.Choice(["auto", "minmax", "percentile", "entropy", "mse"]),
              help="Activation range method (auto: the measured best per target).")
@click.option("--keep-float", default=None,
              help="auto (sensitivity analysis), none, or op kinds to keep float, e.g. "
                   "softmax,add (kinds: conv, dwconv, linear, matmul, add, mul, softmax, pool, "
                   "concat, gelu).")
@click.option("--mixed", default=None, type=click.Choice(MIXED_CHOICES),
              help="Where --keep-float auto puts the sites it picks: float (default), int16 "
                   "(int16 activations: onnx), auto (int16 where the target has it).")
@click.option("--int8-plan", default=None, type=click.Choice(["fast", "all"]),
              help="fast (default): ops whose int8 kernel is slower than fp32 in the target "
                   "runtime on --int8-isa stay float; all: quantize them too.")
@click.option("--int8-isa", default=None, type=click.Choice(["arm64", "x86_64"]),
              help="The CPU the int8 speed plan is decided for (default arm64: phones and "
                   "boards, from instruction counts on the emulated ARM device; x86_64: from "
                   "timings on an x86 host).")
@click.option("--int8-io", is_flag=True, help="TFLite: int8 input/output tensors.")
@click.option("--io", "integer_io", default="int8", show_default=True,
              type=click.Choice(["int8", "uint8"]),
              help="--to tflite --quant int-only: the file's integer input/output type.")
@click.option("--finetune-steps", type=int, default=0, show_default=True,
              help="--quant int-only: quantization-aware fine-tune steps before the "
                   "conversion (needs --data).")
@click.option("--data", "finetune_data", default=None, type=click.Choice(["fmnist"]),
              help="Training data for --finetune-steps (the model's own task).")
@click.option("--validate-on", "validate_on", default="host", show_default=True,
              help="Where to validate: host, and/or qemu://CPU (the aarch64 runtime on the "
                   "emulated ARM device), comma-separated, e.g. host,qemu://cortex-a76.")
@click.option("--allow-mismatch", is_flag=True, help="Exit 0 even if validation fails.")
@click.option("--json", "as_json", is_flag=True)
def export(model: str, to: str, quant: str, weights: Path | None, pretrained: bool, out: Path,
           opset: int | None, batch: int, dynamic_batch: bool, max_batch: int,
           no_reparam: bool, seed: int, n_golden: int, threads: int | None, layout: str,
           compute_precision: str | None, deployment_target: str,
           calib: str | None, calib_n: int | None, calib_method: str | None,
           keep_float: str | None, mixed: str | None, int8_plan: str | None,
           int8_isa: str | None, int8_io: bool,
           integer_io: str, finetune_steps: int,
           finetune_data: str | None, validate_on: str, allow_mismatch: bool,
           as_json: bool) -> None:
    """Export MODEL (timm name or module:function) to device formats, validated."""
    from edgekit.api import export_request
    from edgekit.pipeline import ExportIncomplete, export_model, summarize

    if max_batch != 8 and not dynamic_batch:
        raise UsageError("--max-batch applies to --dynamic-batch",
                         hint="add --dynamic-batch, or use --batch N for a static batch")
    req = export_request(
        model, to=to, quant=quant, calib=calib, out=out, weights=weights,
        pretrained=pretrained, opset=opset, batch=batch,
        dynamic_batch=max_batch if dynamic_batch else None, reparam=not no_reparam,
        seed=seed, n_golden=n_golden, threads=threads, layout=layout,
        compute_precision=compute_precision, deployment_target=deployment_target,
        finetune_steps=finetune_steps, finetune_data=finetune_data,
        validate_on=_devices_to_validate_on(validate_on), integer_io=integer_io,
        calib_n=calib_n, calib_method=calib_method, keep_float=keep_float, mixed=mixed,
        plan=int8_plan, isa=int8_isa, int8_io=int8_io or None)
    incomplete: ExportIncomplete | None = None
    with contextlib.redirect_stdout(sys.stderr), _progress(not as_json) as step:
        try:
            outcomes = export_model(req, on_step=step)
        except ExportIncomplete as exc:  # the other formats were written: report them too
            incomplete, outcomes = exc, exc.outcomes
    rows = [summarize(o) for o in outcomes]
    failures = incomplete.failures if incomplete else {}
    if as_json:
        rows += [{"format": fmt, "ok": False, "validated": False, "error": exc.to_dict()}
                 for fmt, exc in failures.items()]
        _emit_json(rows if len(rows) > 1 else rows[0])
    elif rows:
        _print_summary(rows)
    if incomplete is not None:
        raise incomplete
    failed = [r for r in rows if not r["ok"]]
    if failed and not allow_mismatch:
        raise ValidationFailed(
            "; ".join(f"{r['format']}: {r['reason']}" for r in failed)
            + " — the artifact was written with validated: false",
            path=failed[0]["artifact"], hint="inspect it, or pass --allow-mismatch to accept")


def _devices_to_validate_on(value: str) -> tuple[str, ...]:
    """`host,qemu://cortex-a76` -> the devices beyond the host (the host always validates)."""
    from edgekit.qemu import QemuDevice

    devices = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        if item in ("host", "local"):
            continue
        if not item.startswith("qemu://"):
            raise UsageError(f"--validate-on takes host and qemu://CPU, not '{item}'",
                             hint="for a real board, `edgekit bench --device ssh://…` checks "
                                  "the outputs there")
        devices.append(QemuDevice.from_url(item).url)
    return tuple(devices)


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, (int, float)) and math.isfinite(value) else "-"


def _print_summary(rows: list[dict[str, Any]]) -> None:
    """One table: format, size, seconds, validated, cosine, max-rel, delegated-op share."""
    header = f"{'format':<11}{'size MB':>9}{'export s':>10}  {'validated':<14}{'cosine':>11}" \
             f"{'max-rel':>10}{'delegated':>11}"
    click.echo(header)
    for r in rows:
        state = "yes" if r["validated"] is True else "structure" if r["ok"] else "NO"
        share = r.get("delegated_share")
        click.echo(f"{r['format']:<11}{r['size_mb']:>9.2f}{r['export_s']:>10.1f}  {state:<14}"
                   f"{_fmt(r['cosine'], '.7f'):>11}{_fmt(r['max_rel'], '.1e'):>10}"
                   f"{_fmt(share, '.0%') if share is not None else 'n/a':>11}")
    for r in rows:
        click.echo(f"  {r['artifact']}")
        if r["validated"] is not True:
            click.echo(f"    {r['validated'] if r['ok'] else 'NOT VALIDATED'}"
                       f"{': ' + r['reason'] if r['reason'] else ''}")
        for url, d in r.get("device_validation", {}).items():
            click.echo(f"    on {url}: {'validated' if d['validated'] is True else 'MISMATCH'}"
                       f", cosine {_fmt(d['cosine'], '.7f')} ({d['runtime']})")
        if r.get("not_delegated"):
            left = ", ".join(f"{k}×{v}" for k, v in list(r["not_delegated"].items())[:6])
            click.echo(f"    not delegated: {left}")
    passes = rows[0]["passes"] if rows else {}
    click.echo("passes: " + (", ".join(f"{k} {v}" for k, v in passes.items() if v) or "none"))


@cli.command()
@click.argument("model")
@click.option("--to", "to", default="all", show_default=True,
              help="Format(s): onnx, a comma list, or all.")
@click.option("--weights", type=click.Path(path_type=Path), default=None)
@click.option("--pretrained", is_flag=True, help="timm's weights from the local HF cache.")
@click.option("--no-reparam", is_flag=True, help="Check the graph without deploy passes.")
@click.option("--json", "as_json", is_flag=True)
def check(model: str, to: str, weights: Path | None, pretrained: bool, no_reparam: bool,
          as_json: bool) -> None:
    """Pre-flight: ops each target cannot lower, and ops that fall back outside its delegate."""
    import torch

    from edgekit.models.source import load_source
    from edgekit.support import check_model
    from edgekit.transforms.base import DEFAULT_PASSES, NO_REPARAM_PASSES, DeployPipeline

    formats = _split_formats(to)
    with contextlib.redirect_stdout(sys.stderr), _progress(not as_json) as step:
        step(f"loading {model}")
        source = load_source(model, weights=weights, pretrained=pretrained)
        example = torch.randn(1, *source.input_size)
        step("deploy passes")
        DeployPipeline(NO_REPARAM_PASSES if no_reparam else DEFAULT_PASSES).run(
            source.model, torch.cat([example, example]))
        step(f"checking {', '.join(formats)}")
        results = check_model(source.model, example, formats)
    if as_json:
        _emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            state = "ok" if r.ok else "WOULD FAIL"
            click.echo(f"{r.format:<11} {state:<11} {sum(r.ops.values())} ops")
            if r.unsupported:
                click.echo("  no lowering: " + ", ".join(f"{k}×{v}"
                                                         for k, v in r.unsupported.items()))
            if r.fallback:
                click.echo("  outside the delegate: " + ", ".join(
                    f"{k}×{v}" for k, v in list(r.fallback.items())[:8]))
            if r.note:
                click.echo(f"  ({r.note})")
    if any(not r.ok for r in results):
        ctx = click.get_current_context()
        ctx.exit(1)


@cli.command()
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.option("--threads", type=int, default=None)
@click.option("--runtime", "runtime_name", default=None,
              help="host only: the runtime to check in (default: the format's; tflite: litert "
                   "or tflm, TFLite Micro, which also reports the tensor arena it needs).")
@click.option("--device", default="host", show_default=True,
              help="host; qemu://CPU: the aarch64 build of the runtime on the emulated ARM "
                   "device (`make arm-device`); ssh://user@host[:port] or adb://SERIAL: the "
                   "device's runtime (the agent; for .ekr the pushed runner)")
@click.option("--identity", type=click.Path(path_type=Path), default=None, help="ssh key")
@click.option("--known-hosts", type=click.Path(path_type=Path), default=None,
              help="ssh known_hosts holding the device's host key (never added to)")
@click.option("--python", "device_python", default="python3", show_default=True,
              help="the interpreter on an ssh/adb device (not needed for .ekr)")
@click.option("--timeout", type=float, default=1800, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def validate(artifact_dir: Path, threads: int | None, runtime_name: str | None, device: str,
             identity: Path | None, known_hosts: Path | None, device_python: str,
             timeout: float, as_json: bool) -> None:
    """Re-run the golden check of an artifact in its runtime (here or on a device)."""
    from edgekit.artifact import Artifact
    from edgekit.validate import runtime_extras, validate_artifact

    artifact = Artifact.open(artifact_dir)
    extras: dict[str, Any] = {}
    if runtime_name and device not in ("host", "local"):
        raise UsageError("--runtime picks a runtime on the host",
                         hint="drop --runtime for --device (the device's runtime is used)")
    with contextlib.redirect_stdout(sys.stderr):
        if device in ("host", "local"):
            report = validate_artifact(artifact, runtime=runtime_name, threads=threads)
            extras = runtime_extras(artifact, report.runtime)
        elif device.startswith("qemu://"):
            from edgekit.qemu import QemuDevice
            from edgekit.qemu.run import validate_on

            report = validate_on(QemuDevice.from_url(device), artifact, timeout=timeout)
        elif device.startswith(("ssh://", "adb://")):
            from edgekit.run_one import validate_on_device

            report = validate_on_device(artifact, device, timeout, identity=identity,
                                        known_hosts=known_hosts, python=device_python)
        else:
            raise UsageError(f"unknown device '{device}'",
                             hint="host, qemu://CPU, ssh://user@host[:port] or adb://SERIAL")
    if as_json:
        _emit_json({"artifact": str(artifact_dir), **report.__dict__, **extras})
    else:
        click.echo(f"{artifact_dir}: {'validated' if report.validated else 'MISMATCH'} in "
                   f"{report.runtime}: cosine {report.cosine:.7f}, max-rel {report.max_rel:.2e}, "
                   f"{_top1_text(report)}, SQNR {report.sqnr_db:.1f} dB "
                   f"over {_judged_text(report)}")
        if "tflm_arena_bytes" in extras:
            click.echo(f"  TFLite Micro tensor arena: {extras['tflm_arena_bytes']} bytes "
                       f"({extras['tflm_arena_bytes'] / 1024:.1f} KiB)")
        for batch, b in (report.batches or {}).items():
            if isinstance(b, dict):
                click.echo(f"  at batch {batch}: {'validated' if b['validated'] else 'MISMATCH'}"
                           f", cosine {_fmt(b['cosine'], '.7f')}")
        for name, f in (report.files or {}).items():
            click.echo(f"  {name}: {'validated' if f['validated'] else 'MISMATCH'} in "
                       f"{f['runtime']}, cosine {_fmt(f['cosine'], '.7f')}")
    if not report.validated:
        raise ValidationFailed(report.reason, path=artifact_dir,
                               hint="re-export; check the runtime version in `edgekit doctor`")


def _judged_text(report: ValidationReport) -> str:
    """Which inputs the verdict is over: calibrated modes leave the noise inputs out."""
    if report.judged_inputs is None or report.cosine_noise is None:
        return f"{report.n_inputs} inputs"
    return (f"{report.judged_inputs} in-distribution inputs (the "
            f"{report.n_inputs - report.judged_inputs} noise inputs: cosine "
            f"{report.cosine_noise:.4f}, reported, not judged)")


def _top1_text(report: ValidationReport) -> str:
    """Top-1 agreement with how many samples it was judged on (near-ties are not)."""
    if math.isnan(report.top1_agreement):
        return f"top-1 not judged (all {report.n_inputs} samples are near-ties)"
    if report.top1_judged == 0:
        return "top-1 agreement n/a"
    return (f"top-1 agreement {report.top1_agreement:.0%} over {report.top1_judged}/"
            f"{report.n_inputs} decisive samples")


@cli.command()
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.option("--data", default="fmnist", show_default=True, help="Labelled dataset.")
@click.option("--split", default="test", show_default=True)
@click.option("--limit", type=int, default=None, help="First N samples only.")
@click.option("--threads", type=int, default=None)
@click.option("--json", "as_json", is_flag=True)
def accuracy(artifact_dir: Path, data: str, split: str, limit: int | None,
             threads: int | None, as_json: bool) -> None:
    """Top-1 of an artifact on real held-out data, in its runtime."""
    from edgekit.accuracy import evaluate_artifact

    with contextlib.redirect_stdout(sys.stderr):
        rep = evaluate_artifact(artifact_dir, data=data, split=split, limit=limit,
                                threads=threads)
    if as_json:
        _emit_json(rep.to_dict())
    else:
        click.echo(f"{artifact_dir}: top-1 {rep.top1:.2f} % on {rep.data}/{rep.split} "
                   f"({rep.n} images) in {rep.runtime}, {rep.seconds:.1f} s")


@cli.command(name="compile")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--npu", "accelerator", required=True,
              help="Arm Ethos-U NPU and MAC configuration, e.g. ethos-u55-128, ethos-u65-256, "
                   "ethos-u85-256 (Vela's names).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Where the optimized .tflite goes (default: beside the model / in the "
                   "artifact).")
@click.option("--timeout", type=float, default=1800, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def compile_(path: Path, accelerator: str, out_dir: Path | None, timeout: float,
             as_json: bool) -> None:
    """Compile a TFLite file or artifact for an Ethos-U NPU with Vela: NPU op share, SRAM and
    flash, cycles, estimated inferences/s (stored in the artifact's manifest)."""
    from edgekit.npu import compile_for_npu

    with contextlib.redirect_stdout(sys.stderr):
        summary = compile_for_npu(path, accelerator, out_dir, timeout=timeout)
    if as_json:
        _emit_json({"path": str(path), **summary.to_dict()})
        return
    s = summary
    click.echo(f"{path}: Vela {s.vela_version} for {s.accelerator} ({s.system_config}, "
               f"{s.memory_mode})")
    click.echo(f"  NPU operators {s.npu_ops} / {s.npu_ops + s.cpu_ops} "
               f"({s.npu_op_share:.1%})" + ("" if not s.cpu_op_types else "; left to the CPU: "
               + ", ".join(f"{k}×{v}" for k, v in s.cpu_op_types.items())))
    click.echo(f"  SRAM {s.sram_bytes / 1024:.1f} KiB, flash {s.flash_bytes / 1024:.1f} KiB"
               + (f", DRAM {s.dram_bytes / 1024:.1f} KiB" if s.dram_bytes else ""))
    click.echo(f"  {s.macs / 1e6:.2f} M MACs, {s.cycles_total:,} cycles at "
               f"{s.clock_hz / 1e6:.0f} MHz: {s.inference_ms:.3f} ms, "
               f"{s.inferences_per_second:.1f} inferences/s (Vela's estimate)")
    click.echo(f"  optimized model: {s.optimized_file}")


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--integer-only", is_flag=True,
              help="ONNX: prove no float tensor lies between the entry QuantizeLinear and the "
                   "exit DequantizeLinear; TFLite: no float tensor at all (exit 3 naming the "
                   "offenders if one does).")
@click.option("--json", "as_json", is_flag=True)
def inspect(path: Path, integer_only: bool, as_json: bool) -> None:
    """Op histogram, tensor dtypes, size, params and passes of an artifact or model file."""
    from edgekit.inspect import inspect_path, integer_only_violations

    with contextlib.redirect_stdout(sys.stderr):
        info = inspect_path(path)
        if integer_only:
            info["integer_only_violations"] = integer_only_violations(path)
    if integer_only:
        bad = info["integer_only_violations"]
        if as_json:
            _emit_json({"file": info["file"], "integer_only": not bad, "violations": bad})
        elif not bad:
            click.echo(f"{info['file']}: integer-only " + (
                "(no float tensor: every op, input and output is integer)"
                if info.get("format") == "tflite" else
                "(float only at the entry QuantizeLinear and the exit DequantizeLinear)"))
        if bad:
            where = "in the file" if info.get("format") == "tflite" else "between entry and exit"
            raise ValidationFailed(
                f"{len(bad)} float tensor(s) {where}: " + ", ".join(bad[:8])
                + (" …" if len(bad) > 8 else ""), path=path,
                hint="re-export with --quant int-only; every op must stay integer")
        return
    if as_json:
        _emit_json(info)
        return
    click.echo(f"{info['file']}  ({info['size_bytes'] / 2**20:.2f} MB, {info['params']:,} params, "
               f"{info['n_nodes']} nodes)")
    for key in ("inputs", "outputs"):
        for t in info[key]:
            click.echo(f"  {key[:-1]:<6} {t['name']}: {t['dtype']}{t['shape']}")
    click.echo("  ops:    " + ", ".join(f"{k}×{v}" for k, v in info["ops"].items()))
    click.echo("  dtypes: " + ", ".join(f"{k}×{v}" for k, v in info["initializer_dtypes"].items()))
    if info.get("passes") is not None:
        click.echo("  passes: " + ", ".join(f"{p['name']}({p['changed']}, Δ{p['max_rel']:.1e})"
                                            for p in info["passes"]))
    q = info.get("quantization")
    if q and q.get("recipe"):
        click.echo(f"  recipe: {q['recipe']}: {q.get('how')}")
    if q and q.get("calibration"):
        cal = q.get("calibration", {})
        repq = (q.get("repq_layernorm") or {}).get("layernorms", 0)
        cos = q.get("holdout_cosine")
        click.echo(f"  quant:  {q.get('quantizer')}; ranges {q.get('calib_method')} on "
                   f"{cal.get('samples')} × {cal.get('set')}; RepQ LayerNorms {repq}; "
                   f"float sites {len(q.get('float_sites') or [])}/{q.get('sites')}"
                   + (f"; hold-out cosine {cos:.4f}" if isinstance(cos, float) else ""))
        for key, verdict in (("float_for_speed", "float"), ("int8_for_speed", "int8")):
            for kind, reason in (q.get(key) or {}).items():
                click.echo(f"  {verdict} for speed (--int8-plan {q.get('int8_plan')} on "
                           f"{q.get('int8_isa', 'x86_64')}): {kind}: {reason}")
        if info.get("float_islands"):
            click.echo("  float islands in the delegate (no int8 XNNPACK kernel): " + ", ".join(
                f"{k}×{v}" for k, v in info["float_islands"].items()))
    v = info.get("validation")
    if v:
        state = {True: "ok", False: "FAILED"}.get(v["validated"], str(v["validated"]))
        cosine = f" cosine {v['cosine']:.7f}" if v["cosine"] == v["cosine"] else ""
        click.echo(f"  validation: {state}{cosine} in {v['runtime']}")


@cli.command()
@click.argument("artifacts", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--device", default="local", show_default=True,
              help="local, ssh://user@host[:port], adb://SERIAL, vela://ethos-u55-128 (Vela's "
                   "estimate, flagged) or qemu://CPU (the emulated "
                   "ARM device: instructions per inference, not time)")
@click.option("--threads", type=int, default=None)
@click.option("--warmup", type=int, default=10, show_default=True)
@click.option("--runs", type=int, default=50, show_default=True)
@click.option("--min-seconds", type=float, default=2.0, show_default=True)
@click.option("--rounds", type=int, default=10, show_default=True,
              help="Interleaved rounds the measured runs are split into.")
@click.option("--timeout", type=float, default=900, show_default=True)
@click.option("--retries", type=int, default=1, show_default=True)
@click.option("--compare", is_flag=True, help="Interleave A B C A B C …; ratios vs the first.")
@click.option("--identity", type=click.Path(path_type=Path), default=None, help="ssh key")
@click.option("--known-hosts", type=click.Path(path_type=Path), default=None,
              help="ssh known_hosts file (host keys are never added automatically)")
@click.option("--remote-tmp", default="/tmp", show_default=True)
@click.option("--python", "device_python", default="python3", show_default=True,
              help="Python on the device")
@click.option("--native", default=None,
              help="Drive a native benchmark tool at this path on the device instead of the "
                   "agent (benchmark_litert_model[.py]).")
@click.option("--kernels", is_flag=True,
              help="Time the integer-only C kernels (kernels_arm/ek_bench) at an int-only "
                   "artifact's shapes instead of the model; --device may also be qemu://CPU "
                   "(an ARM correctness smoke test, never a speed).")
@click.option("--kernel-paths", default=None,
              help="With --kernels: only these paths, e.g. scalar,neon,neondot.")
@click.option("--pin-cpu", type=int, default=None, help="With --kernels: pin ek_bench to a core.")
@click.option("--ek-bench", "ek_bench", type=click.Path(path_type=Path), default=None,
              help="With --kernels: this ek_bench binary instead of kernels_arm/build's.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write results JSON.")
@click.option("--batch", type=int, default=None,
              help="Images per inference (a --dynamic-batch artifact, up to its bound); "
                   "throughput in images/s is reported beside latency.")
@click.option("--json", "as_json", is_flag=True)
def bench(artifacts: tuple[Path, ...], device: str, threads: int | None, warmup: int, runs: int,
          min_seconds: float, rounds: int, timeout: float, retries: int, compare: bool,
          identity: Path | None, known_hosts: Path | None, remote_tmp: str, device_python: str,
          native: str | None, kernels: bool, kernel_paths: str | None, pin_cpu: int | None,
          ek_bench: Path | None, out: Path | None, batch: int | None, as_json: bool) -> None:
    """Latency of artifacts on the host or a device, through the edgekit agent."""
    from edgekit.bench.collectors import BenchConfig, BenchFailed
    from edgekit.bench.run import run_bench, write_results

    cfg = BenchConfig(threads=threads, warmup=warmup, runs=runs, min_seconds=min_seconds,
                      rounds=rounds, timeout=timeout, retries=retries, python=device_python,
                      batch=batch)
    with contextlib.redirect_stdout(sys.stderr), _progress(not as_json) as step:
        step(f"benchmarking {len(artifacts)} artifact(s) on {device}")
        if kernels:
            from edgekit.bench.kernels import run_kernel_bench

            if native or compare:
                raise UsageError("--kernels times the C kernels with ek_bench; it does not "
                                 f"combine with {'--native' if native else '--compare'}",
                                 hint="drop one of the two options")

            rows = run_kernel_bench(list(artifacts), device, cfg, pin_cpu=pin_cpu,
                                    kernel_paths=kernel_paths, ek_bench=ek_bench, identity=identity,
                                    known_hosts=known_hosts, remote_tmp=remote_tmp)
        else:
            rows = run_bench(list(artifacts), device=device, cfg=cfg, compare=compare,
                             identity=identity, known_hosts=known_hosts, remote_tmp=remote_tmp,
                             native=native)
    if out:
        write_results(rows, out)
    if as_json:
        _emit_json(rows)
    else:
        for r in rows:
            if r.get("status") != "ok":
                click.echo(f"{r['artifact']}: FAILED: {r['error']}")
                continue
            flags = [f for f, ok in (("unstable", r["stable"]), ("implausible", r["plausible"]),
                                     ("outputs wrong", r["validated"])) if ok is False] \
                + (["emulated: not a speed"] if r.get("emulated") else [])
            ratio = f"  ×{r['ratio_vs_first']:.2f}" if "ratio_vs_first" in r else ""
            if r.get("estimated"):
                n = r["npu"]
                click.echo(f"{r['artifact']}: {r['median_ms']:.3f} ms on {r['device']} "
                           f"({n['cycles_total']:,} cycles at {n['clock_hz'] / 1e6:.0f} MHz, "
                           f"{n['npu_ops']}/{n['npu_ops'] + n['cpu_ops']} ops on the NPU, "
                           f"SRAM {n['sram_bytes'] / 1024:.1f} KiB){ratio}  [estimated by Vela "
                           f"{r['runtime_version']}: a performance model, not a measurement]")
                continue
            if r.get("instructions_per_inference") is not None:
                click.echo(f"{r['artifact']}: {r['instructions_per_inference'] / 1e6:.2f} M "
                           f"instructions per inference on {r['device']} ({r['runtime']} "
                           f"{r['runtime_version']}, 1 thread, {r['count_runs']} counted runs)"
                           f"{ratio}  outputs {'ok' if r['validated'] else 'WRONG'} "
                           f"(cosine {r['validation_cosine']:.5f})  [emulated: qemu wall time "
                           "is not a speed]")
                continue
            click.echo(f"{r['artifact']}: median {_fmt(r['median_ms'], '.3f')} ms  "
                       f"p90 {_fmt(r['p90_ms'], '.3f')}  p99 {_fmt(r['p99_ms'], '.3f')}  "
                       f"cv {_fmt(r['cv'], '.1%')}  n={r['iterations']}  "
                       f"init {_fmt(r['init_ms'], '.0f')} ms  first {_fmt(r['first_ms'], '.1f')}"
                       f" ms  rss {_fmt(r['peak_rss_mb'], '.0f')} MB{ratio}"
                       + (f"  batch {r['batch']}: {_fmt(r.get('throughput_ips'), '.1f')} "
                          "images/s" if (r.get("batch") or 1) > 1 else "")
                       + (f"  [{', '.join(flags)}]" if flags else "")
                       + (f"  (native {r['native']['tool']})" if r.get("native") else ""))
    failed = [r for r in rows if r.get("status") != "ok"]
    if failed:
        raise BenchFailed(f"{len(failed)} of {len(rows)} benchmark(s) failed: "
                          f"{failed[0]['error']}", hint="see the failure records"
                          + (f" in {out}" if out else " (--out FILE keeps them)"))


@cli.command("run")
@click.argument("artifact_dir", type=click.Path(path_type=Path))
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path),
              help="an image (preprocessed as the manifest says) or a .npy array")
@click.option("--device", default="local", show_default=True,
              help="local, ssh://user@host[:port], adb://SERIAL or qemu://CPU")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="write the first output here (.npy)")
@click.option("--identity", type=click.Path(path_type=Path), default=None, help="ssh key")
@click.option("--known-hosts", type=click.Path(path_type=Path), default=None,
              help="ssh known_hosts holding the device's host key (never added to)")
@click.option("--python", "device_python", default="python3", show_default=True,
              help="the interpreter on an ssh/adb device")
@click.option("--timeout", type=float, default=1800, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def run_cmd(artifact_dir: Path, input_path: Path, device: str, out: Path | None,
            identity: Path | None, known_hosts: Path | None, device_python: str,
            timeout: float, as_json: bool) -> None:
    """Run one input through an artifact on a device and write its output."""
    import numpy as np

    from edgekit.artifact import Artifact
    from edgekit.run_one import load_input, run_artifact

    artifact = Artifact.open(artifact_dir)
    x = load_input(artifact, input_path)
    with contextlib.redirect_stdout(sys.stderr):
        res = run_artifact(artifact, x, device, timeout=timeout, identity=identity,
                           known_hosts=known_hosts, python=device_python)
    first = res["outputs"][0]
    if out:
        tmp = out.with_name(f".{out.name}.tmp.npy")
        np.save(tmp, first)
        tmp.replace(out)
    top = np.argsort(first.reshape(len(first), -1), axis=1)[:, ::-1][:, :5]
    if as_json:
        _emit_json({"artifact": str(artifact_dir), "device": res["device"],
                    "runtime": res["runtime"], "machine": res["machine"],
                    "emulated": res["emulated"], "output_shapes": [list(o.shape) for o in
                                                                   res["outputs"]],
                    "top5": top.tolist(), "out": str(out) if out else None,
                    "output": first.tolist() if first.size <= 10_000 else None})
    else:
        click.echo(f"{artifact_dir} on {res['device']} ({res['runtime']}, {res['machine']}): "
                   f"output {tuple(first.shape)}, top-5 {top[0].tolist()}"
                   + (f"; written to {out}" if out else ""))


def _emit_layer_result(result: dict[str, Any], text: str, out: Path | None,
                       html_out: Path | None, as_json: bool) -> None:
    """profile / diff: the JSON to --out, the report page to --html, then JSON or text."""
    if out:
        out.write_text(json.dumps(_jsonable(result), indent=1))
    if html_out:
        from edgekit.report import render_html

        render_html([result], html_out)
        click.echo(f"wrote {html_out}", err=True)
    if as_json:
        _emit_json(result)
    else:
        click.echo(text)


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--device", default="local", show_default=True,
              help="local, ssh://user@host, adb://SERIAL or qemu://CPU (emulated: shares and "
                   "instruction counts, never speed)")
@click.option("--runs", type=int, default=20, show_default=True,
              help="Profiled runs (and as many unprofiled ones for the end-to-end median).")
@click.option("--warmup", type=int, default=5, show_default=True)
@click.option("--threads", type=int, default=None, help="Runtime threads (default: runtime's).")
@click.option("--top", type=int, default=10, show_default=True, help="Rows per table.")
@click.option("--timeout", type=float, default=1800.0, show_default=True)
@click.option("--identity", type=click.Path(path_type=Path), default=None, help="ssh key")
@click.option("--known-hosts", type=click.Path(path_type=Path), default=None,
              help="ssh known_hosts file (host keys are never added automatically)")
@click.option("--python", "device_python", default="python3", show_default=True,
              help="Python on the device")
@click.option("--html", "html_out", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON.")
@click.option("--json", "as_json", is_flag=True)
def profile(artifact: Path, device: str, runs: int, warmup: int, threads: int | None, top: int,
            timeout: float, identity: Path | None, known_hosts: Path | None,
            device_python: str, html_out: Path | None, out: Path | None,
            as_json: bool) -> None:
    """Per-op time from the runtime's own profiler, each op tied to its PyTorch module; grouped
    by block and by op type, with the per-op sum checked against the end-to-end median."""
    from edgekit.layers.profile import profile_artifact, render_text

    result = profile_artifact(artifact, device, runs=runs, threads=threads, warmup=warmup,
                              timeout=timeout, identity=identity, known_hosts=known_hosts,
                              python=device_python)
    _emit_layer_result(result, render_text(result, top), out, html_out, as_json)


@cli.command()
@click.argument("artifact", type=click.Path(path_type=Path))
@click.option("--against", default="torch", show_default=True,
              help="torch (the timm fp32 model rebuilt from the manifest) or another "
                   "artifact's directory (int8 vs fp32, TFLite vs ONNX)")
@click.option("--inputs", default="auto", show_default=True,
              help="golden, photos (the golden set's in-distribution part), a folder of "
                   "images, or auto (photos for calibrated modes, else golden)")
@click.option("--threshold", type=float, default=None,
              help="Cosine under which a layer fails (default: the mode's validation bar).")
@click.option("--top", type=int, default=10, show_default=True)
@click.option("--html", "html_out", type=click.Path(path_type=Path), default=None)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Write the JSON.")
@click.option("--json", "as_json", is_flag=True)
def diff(artifact: Path, against: str, inputs: str, threshold: float | None, top: int,
         html_out: Path | None, out: Path | None, as_json: bool) -> None:
    """Per-layer cosine / SQNR / max-abs of an artifact's intermediate tensors against the
    PyTorch model (forward hooks) or another artifact, matched by module path; names the
    first layer under the threshold."""
    from edgekit.layers.diff import diff_artifact, render_text

    result = diff_artifact(artifact, against, inputs, threshold)
    _emit_layer_result(result, render_text(result, top), out, html_out, as_json)


@cli.command()
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--html", "html_out", type=click.Path(path_type=Path), default=None)
@click.option("--md", "md_out", type=click.Path(path_type=Path), default=None)
def report(results: tuple[Path, ...], html_out: Path | None, md_out: Path | None) -> None:
    """Markdown and a self-contained HTML page (PNG plots) from bench results JSON."""
    from edgekit.report import load_results, render_html, render_markdown

    rows = load_results(list(results))
    md = render_markdown(rows)
    if md_out:
        md_out.write_text(md)
    if html_out:
        render_html(rows, html_out)
        click.echo(f"wrote {html_out}", err=True)
    if not md_out and not html_out:
        click.echo(md)


def main() -> None:
    cli(prog_name="edgekit")


if __name__ == "__main__":
    main()
