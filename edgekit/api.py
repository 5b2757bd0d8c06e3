"""edgekit's Python API: the CLI's pipeline for notebooks and training scripts.

    import edgekit
    arts = edgekit.export(model_or_timm_name, example_inputs=None, to=("onnx", "tflite"),
                          quant="int8", calib="./images", out="artifacts")   # -> list[Artifact]
    a = edgekit.load("artifacts/levit_128s.int8.tflite")
    y = a.run(x)                               # numpy in, numpy out, in the artifact's runtime
    a.validate(device="qemu://cortex-a76")     # -> ValidationReport
    r = a.bench(device="ssh://pi@board", runs=100)   # -> BenchResult
    edgekit.check(model, to="all")             # the pre-flight report

Everything raises the CLI's EdgekitError types. A model is a timm name, 'module:function', a
Fashion-MNIST config name, or an `nn.Module` (with `example_inputs`: a tensor, a tuple of one
tensor, or a shape, unless it carries a timm `pretrained_cfg`); a module is exported as it is
(never mutated: edgekit works on a copy) and the manifest records its class and a hash of its
parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import Artifact, ValidationReport
from edgekit.errors import UsageError

QUANT_OPTIONS = ("calib_n", "calib_method", "keep_float", "plan", "isa", "int8_io", "mixed")


def _formats(to: str | Iterable[str], quant: str) -> tuple[str, ...]:
    from edgekit.exporter import EXPORTERS

    items = [to] if isinstance(to, str) else list(to)
    names = [n.strip() for item in items for n in item.split(",") if n.strip()]
    if names == ["all"]:
        from edgekit.pipeline import IMPLEMENTED_QUANTS

        return tuple(f for f in EXPORTERS.list() if quant in IMPLEMENTED_QUANTS.get(f, ()))
    if not names:
        raise UsageError("no format given", hint="to='onnx', ('onnx', 'tflite') or 'all'")
    return tuple(names)


def export_request(model: Any, example_inputs: Any = None, *,
                   to: str | Iterable[str] = ("onnx",), quant: str = "fp32",
                   calib: str | None = None, out: str | Path = "artifacts",
                   weights: str | Path | None = None, pretrained: bool = False,
                   **options: Any) -> Any:
    """The ExportRequest that `export` runs (and `edgekit export` builds from its flags)."""
    from edgekit.pipeline import ExportRequest
    from edgekit.quant.config import QuantConfig

    quant_opts = {k: options.pop(k) for k in QUANT_OPTIONS if k in options}
    quant_opts = {k: v for k, v in quant_opts.items() if v is not None}
    if "keep_float" in quant_opts and isinstance(quant_opts["keep_float"], str):
        quant_opts["keep_float"] = QuantConfig.parse_keep_float(quant_opts["keep_float"])
    if calib is not None:
        quant_opts["calib"] = calib
    fields = {f.name for f in dataclasses.fields(ExportRequest)}
    unknown = sorted(set(options) - fields)
    if unknown:
        raise UsageError(f"unknown export option(s): {', '.join(unknown)}",
                         hint="options are ExportRequest fields: " + ", ".join(sorted(fields)))
    quant_config = QuantConfig(**quant_opts) if quant_opts or quant == "int8" else None
    return ExportRequest(model=model, formats=_formats(to, quant), quant=quant, out=Path(out),
                         weights=Path(weights) if weights is not None else None,
                         pretrained=pretrained, quant_config=quant_config,
                         example_inputs=example_inputs, **options)


def export(model: Any, example_inputs: Any = None, *, to: str | Iterable[str] = ("onnx",),
           quant: str = "fp32", calib: str | None = None, out: str | Path = "artifacts",
           weights: str | Path | None = None, pretrained: bool = False, on_step: Any = None,
           **options: Any) -> list[Artifact]:
    """Export `model` to device formats, validated — the same pipeline as `edgekit export`.

    `weights` is a checkpoint file (.safetensors, pytorch_model.bin, .pth, …) and
    `pretrained=True` takes timm's published weights from the local Hugging Face cache (a
    model name only). `options` are ExportRequest fields (batch, dynamic_batch, opset, layout,
    threads, n_golden, seed, integer_io, validate_on, …) and the int8 options of the CLI
    (calib_n, calib_method, keep_float, plan, isa, int8_io). Returns one validated Artifact
    per format; a format that fails raises (the CLI's ExportIncomplete carries the ones that
    were written)."""
    from edgekit.pipeline import export_model

    req = export_request(model, example_inputs, to=to, quant=quant, calib=calib, out=out,
                         weights=weights, pretrained=pretrained, **options)
    outcomes = export_model(req, on_step=on_step or (lambda s: None))
    return [o.artifact for o in outcomes]


def check(model: Any, example_inputs: Any = None, to: str | Iterable[str] = "all",
          weights: str | Path | None = None, pretrained: bool = False) -> list[Any]:
    """The pre-flight report of `edgekit check`: per format, the ops it has no lowering for."""
    import torch

    from edgekit.data import golden_inputs
    from edgekit.models.source import load_source, source_from_module
    from edgekit.support import check_model

    source = (load_source(model, weights=Path(weights) if weights else None,
                          pretrained=pretrained)
              if isinstance(model, str) else source_from_module(model, example_inputs))
    example = torch.from_numpy(golden_inputs(source.data_config, 1, noise_fraction=0.0))
    return check_model(source.model, example, _formats(to, "fp32"))


@dataclass(frozen=True)
class BenchResult:
    """One `edgekit bench --json` row as an object (`row` keeps every field)."""
    artifact: str
    device: str
    runtime: str
    median_ms: float | None
    p90_ms: float | None
    iterations: int | None
    estimated: bool = False
    instructions_per_inference: float | None = None
    batch: int = 1
    throughput_ips: float | None = None  # images per second at the median (batch / median)
    row: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> BenchResult:
        return cls(artifact=str(row.get("artifact")), device=str(row.get("device", "local")),
                   runtime=str(row.get("runtime")), median_ms=row.get("median_ms"),
                   p90_ms=row.get("p90_ms"), iterations=row.get("iterations"),
                   estimated=bool(row.get("estimated")),
                   instructions_per_inference=row.get("instructions_per_inference"),
                   batch=int(row.get("batch") or 1), throughput_ips=row.get("throughput_ips"),
                   row=row)


@dataclass(frozen=True)
class LoadedArtifact:
    """An artifact opened for use: run it, validate it, benchmark it."""
    artifact: Artifact

    @property
    def path(self) -> Path:
        return self.artifact.path

    @property
    def manifest(self) -> Any:
        return self.artifact.manifest

    def run(self, x: Any, device: str = "local") -> np.ndarray:
        """Outputs for input x (numpy or torch, the manifest's input shape) in the artifact's
        runtime, here or on a device (ssh://, adb://, qemu://)."""
        from edgekit.run_one import run_artifact

        arr = x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)
        result = run_artifact(self.artifact, np.asarray(arr, dtype=np.float32), device=device)
        return np.asarray(result["outputs"][0])

    def validate(self, device: str = "host", runtime: str | None = None,
                 timeout: float = 1800.0, identity: str | Path | None = None,
                 known_hosts: str | Path | None = None, python: str = "python3"
                 ) -> ValidationReport:
        """The golden check in the artifact's runtime (or `runtime`), here or on a device
        (ssh:// takes `identity`/`known_hosts` like the CLI's --identity/--known-hosts)."""
        if device in ("host", "local"):
            from edgekit.validate import validate_artifact

            return validate_artifact(self.artifact, runtime=runtime)
        if runtime is not None:
            raise UsageError("runtime= picks a runtime on the host", hint="drop it for devices")
        if device.startswith("qemu://"):
            from edgekit.qemu import QemuDevice
            from edgekit.qemu.run import validate_on

            return validate_on(QemuDevice.from_url(device), self.artifact, timeout=timeout)
        from edgekit.run_one import validate_on_device

        return validate_on_device(self.artifact, device, timeout, python=python,
                                  identity=Path(identity) if identity else None,
                                  known_hosts=Path(known_hosts) if known_hosts else None)

    def bench(self, device: str = "local", runs: int = 50, warmup: int = 10,
              threads: int | None = None, batch: int | None = None,
              identity: str | Path | None = None, known_hosts: str | Path | None = None,
              **config: Any) -> BenchResult:
        """Latency here or on a device (the `edgekit bench --json` row as an object); `batch`
        images per inference for a dynamic-batch artifact (throughput_ips beside latency);
        `config`: BenchConfig fields (min_seconds, rounds, timeout, python, …)."""
        from edgekit.bench.collectors import BenchConfig
        from edgekit.bench.run import run_bench

        cfg = BenchConfig(threads=threads, warmup=warmup, runs=runs, batch=batch, **config)
        (row,) = run_bench([self.path], device=device, cfg=cfg,
                           identity=Path(identity) if identity else None,
                           known_hosts=Path(known_hosts) if known_hosts else None)
        return BenchResult.from_row(row)

    def profile(self, device: str = "local", runs: int = 20, threads: int | None = None,
                **options: Any) -> dict[str, Any]:
        """Per-op time tied to source modules (the `edgekit profile --json` document);
        `options`: warmup, timeout, identity, known_hosts, python."""
        from edgekit.layers.profile import profile_artifact

        return profile_artifact(self.path, device, runs=runs, threads=threads, **options)

    def diff(self, against: str | Path | LoadedArtifact = "torch", inputs: str = "auto",
             threshold: float | None = None) -> dict[str, Any]:
        """Per-layer cosine/SQNR/max-abs against timm fp32 or another artifact (the `edgekit
        diff --json` document)."""
        from edgekit.layers.diff import diff_artifact

        ref = str(against.path) if isinstance(against, LoadedArtifact) else str(against)
        return diff_artifact(self.path, ref, inputs, threshold)


def load(path: str | Path) -> LoadedArtifact:
    """Open an artifact directory (its model file's sha256 is checked)."""
    return LoadedArtifact(Artifact.open(Path(path)))
