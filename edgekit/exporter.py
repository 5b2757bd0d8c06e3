"""The Exporter interface and registry. Concrete exporters live in `exporters/` (installed as
`edgekit.exporters`) and are registered lazily so core never imports their SDKs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

from edgekit.artifact import TensorSpec
from edgekit.errors import ArtifactError
from edgekit.registry import Registry


@dataclass(frozen=True)
class ExportOptions:
    opset: int | None = None  # ONNX opset; None = exporter default
    input_name: str = "input"
    output_name: str = "logits"
    layout: str = "nchw"  # image input layout of the file: nchw, or nhwc (TFLite)
    compute_precision: str = "fp32"  # Core ML: fp16 or fp32
    deployment_target: str = "iOS17"  # Core ML minimum deployment target
    # the batch dimension left dynamic up to this size (the trace example then has batch 2:
    # torch.export specializes a dimension traced at 1); None: static
    dynamic_batch: int | None = None
    # converter-specific arguments from a quantizer (e.g. litert-torch's quant_config)
    converter_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    file: str  # model file name inside the artifact dir
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    versions: dict[str, str]
    details: dict[str, Any] = field(default_factory=dict)  # e.g. opset, op histogram


class Exporter(Protocol):
    format: ClassVar[str]
    filename: ClassVar[str]

    def export(self, model: Any, example: Any, options: ExportOptions, out_dir: Path
               ) -> ExportResult:
        """Write the model file into out_dir (a temp dir) and describe it."""
        ...

    @classmethod
    def check(cls, exported: Any) -> Any:
        """Pre-flight op support (an edgekit.support.Support) for a torch.export program."""
        ...

    @classmethod
    def sniff(cls, path: Path) -> None:
        """Raise ArtifactError unless `path` looks like this format (cheap, no parsing)."""
        ...

    @classmethod
    def describe(cls, path: Path) -> dict[str, Any]:
        """Parse the model file: op histogram, tensor dtypes, parameter count. Untrusted input:
        callers run this in an isolated child process."""
        ...


def check_file_kind(path: Path, *, suffix: str, what: str, magic: bytes, offset: int,
                    missing_magic: str) -> None:
    """Cheap sniff before any parser: the right extension and the format's magic bytes."""
    if path.suffix != suffix:
        raise ArtifactError(f"not {what} (extension '{path.suffix}')", path=path,
                            hint=f"pass a {suffix} file or an artifact directory")
    with open(path, "rb") as f:
        head = f.read(offset + len(magic))
    if head[offset:offset + len(magic)] != magic:
        raise ArtifactError(f"not {what} ({missing_magic})", path=path,
                            hint=f"check the file is a {suffix} model and is complete")


EXPORTERS: Registry[type[Exporter]] = Registry("exporter")
EXPORTERS.register("onnx", "edgekit.exporters.onnx:OnnxExporter", extra="onnx")
EXPORTERS.register("tflite", "edgekit.exporters.tflite:TFLiteExporter", extra="tflite")
EXPORTERS.register("executorch", "edgekit.exporters.executorch:ExecuTorchExporter",
                   extra="executorch")
EXPORTERS.register("coreml", "edgekit.exporters.coreml:CoreMLExporter", extra="coreml")
EXPORTERS.register("ekr", "edgekit.exporters.ekr:EkrExporter")

# Files written beside a format's model from its final model file (after quantization) and
# validated in their runtime like the model: ONNX -> the ORT format onnxruntime-mobile loads.
# An entry has write(model_path) -> manifest record and sniff(path) (checked before a runtime).
COMPANIONS: Registry[Any] = Registry("companion file")
COMPANIONS.register("ort-format", "edgekit.exporters.onnx:ORT_FORMAT", extra="onnx")
FORMAT_COMPANIONS: dict[str, tuple[str, ...]] = {"onnx": ("ort-format",)}

SUFFIX_TO_FORMAT = {".onnx": "onnx", ".tflite": "tflite", ".pte": "executorch",
                    ".mlpackage": "coreml", ".ekr": "ekr"}


def batch_dynamic_shapes(options: ExportOptions) -> tuple[dict[int, Any], ...] | None:
    """torch.export's dynamic_shapes for a batch dimension 1..options.dynamic_batch."""
    if options.dynamic_batch is None:
        return None
    from torch.export import Dim

    return ({0: Dim("batch", min=1, max=max(2, options.dynamic_batch))},)
