"""The Runtime interface and registry; adapters live in `runtimes/` (edgekit.runtimes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

import numpy as np

from edgekit.registry import Registry


class Session(Protocol):
    inputs: dict[str, tuple[tuple[int, ...], str]]  # name -> (shape, dtype the caller feeds)

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class Runtime(Protocol):
    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]

    @classmethod
    def available(cls) -> bool: ...

    @classmethod
    def version(cls) -> str: ...

    def load(self, model_path: Path, threads: int | None = None) -> Session: ...


def dist_version(distribution: str) -> str:
    """Installed version of a pip distribution, or "unknown"."""
    import importlib.metadata as md

    try:
        return md.version(distribution)
    except md.PackageNotFoundError:
        return "unknown"


class PackageRuntime:
    """A runtime provided by one Python package: available when `module` imports, versioned by
    its pip `distribution`, sessions made by `session_cls(path, threads)`."""

    name: ClassVar[str]
    formats: ClassVar[tuple[str, ...]]
    module: ClassVar[str]
    distribution: ClassVar[str]
    session_cls: ClassVar[Any]

    @classmethod
    def available(cls) -> bool:
        import importlib

        try:
            importlib.import_module(cls.module)
        except ImportError:
            return False
        return True

    @classmethod
    def version(cls) -> str:
        return dist_version(cls.distribution)

    def load(self, model_path: Path, threads: int | None = None) -> Any:
        return self.session_cls(model_path, threads)


RUNTIMES: Registry[type[Runtime]] = Registry("runtime")
RUNTIMES.register("onnxruntime", "edgekit.runtimes.onnxruntime:OnnxRuntime", extra="onnx")
RUNTIMES.register("litert", "edgekit.runtimes.litert:LiteRtRuntime", extra="tflite")
RUNTIMES.register("executorch", "edgekit.runtimes.executorch:ExecuTorchRuntime",
                  extra="executorch")
RUNTIMES.register("coreml", "edgekit.runtimes.coreml:CoreMLRuntime", extra="coreml")
RUNTIMES.register("ekr", "edgekit.runtimes.ekr:EkrRuntime")
RUNTIMES.register("tflm", "edgekit.runtimes.tflm:TflmRuntime", extra="npu")

# Which runtime validates/benchmarks a format by default (no import needed to decide).
DEFAULT_RUNTIME = {"onnx": "onnxruntime", "tflite": "litert", "executorch": "executorch",
                   "coreml": "coreml", "ekr": "ekr"}
