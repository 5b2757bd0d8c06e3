"""`edgekit inspect`: what is inside an artifact (or a bare model file), parsed in isolation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.artifact import Artifact
from edgekit.errors import ArtifactError
from edgekit.exporter import EXPORTERS, SUFFIX_TO_FORMAT
from edgekit.isolation import run_isolated


def _describe(fmt: str, path: str) -> dict[str, Any]:
    return EXPORTERS.get(fmt).describe(Path(path))


def describe_file(path: Path, fmt: str | None = None, timeout: float = 120.0) -> dict[str, Any]:
    if not path.exists():
        raise ArtifactError("no such file", path=path, hint="check the path")
    fmt = fmt or SUFFIX_TO_FORMAT.get(path.suffix)
    if fmt is None:
        raise ArtifactError(f"unknown model file type '{path.suffix}'", path=path,
                            hint=f"expected one of {', '.join(SUFFIX_TO_FORMAT)} "
                                 "or an artifact directory")
    return run_isolated(_describe, fmt, str(path), what=f"parsing {path.name}", path=str(path),
                        timeout=timeout)


def inspect_path(path: Path) -> dict[str, Any]:
    if path.is_dir():
        artifact = Artifact.open(path)
        m = artifact.manifest
        info = describe_file(artifact.model_path, m.format)
        info.update({
            "artifact": str(path), "model": m.model, "quant": m.quant, "weights": m.weights,
            "passes": [p.__dict__ for p in m.passes],
            "validation": m.validation.__dict__ if m.validation else None,
            "versions": m.versions, "sha256": m.sha256,
            "quantization": m.exporter.get("quantization"),
            "float_islands": m.exporter.get("float_islands"),
        })
        return info
    return describe_file(path)


def integer_only_violations(path: Path) -> list[str]:
    """Float tensors of an ONNX or TFLite model (file or artifact dir), each named with its op.
    ONNX allows the float entry/exit (QuantizeLinear/DequantizeLinear at the graph's edges);
    TFLite allows nothing float (NPU and microcontroller toolchains take no float tensor).
    The file is parsed in an isolated child (it may be untrusted)."""
    from edgekit.errors import UsageError

    model_path = Artifact.open(path).model_path if path.is_dir() else path
    checks = {".onnx": _violations, ".tflite": _tflite_violations}
    if model_path.suffix not in checks:
        raise UsageError(f"--integer-only checks ONNX and TFLite models, not {model_path.suffix}",
                         path=model_path, hint="pass an .onnx/.tflite file or its artifact")
    if not model_path.exists():
        raise ArtifactError("no such file", path=model_path, hint="check the path")
    return run_isolated(checks[model_path.suffix], str(model_path),
                        what=f"checking {model_path.name}", path=str(model_path))


def _violations(model_path: str) -> list[str]:
    import onnx

    from edgekit.intonly.graph import float_violations

    return float_violations(onnx.load(model_path, load_external_data=False))


def _tflite_violations(model_path: str) -> list[str]:
    from edgekit.exporters.tflite import TFLiteExporter
    from edgekit.exporters.tflite_integer import integer_violations

    TFLiteExporter.sniff(Path(model_path))  # magic and size before the flatbuffer parser
    return integer_violations(Path(model_path))
