"""Core ML runtime: `MLModel.predict` exists only on macOS (coremltools has no Linux runtime)."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import ClassVar

import numpy as np
from edgekit.runtimes.checks import check_inputs

from edgekit.errors import MissingDependency
from edgekit.runtime import PackageRuntime


class CoreMLSession:
    def __init__(self, path: Path, threads: int | None) -> None:
        import coremltools as ct

        self._model = ct.models.MLModel(str(path), compute_units=ct.ComputeUnit.CPU_ONLY)
        spec = self._model.get_spec()
        self.inputs = {f.name: (tuple(int(s) for s in f.type.multiArrayType.shape), "float32")
                       for f in spec.description.input}
        self._outputs = [f.name for f in spec.description.output]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        out = self._model.predict(inputs)
        return {name: np.asarray(out[name], dtype=np.float32) for name in self._outputs}


class CoreMLRuntime(PackageRuntime):
    name: ClassVar[str] = "coreml"
    formats: ClassVar[tuple[str, ...]] = ("coreml",)
    module: ClassVar[str] = "coremltools"
    distribution: ClassVar[str] = "coremltools"
    session_cls = CoreMLSession

    @classmethod
    def available(cls) -> bool:
        return platform.system() == "Darwin" and super().available()

    def load(self, model_path: Path, threads: int | None = None) -> CoreMLSession:
        if not self.available():
            raise MissingDependency(
                "Core ML prediction needs macOS (coremltools has no runtime on "
                f"{platform.system()})", path=model_path,
                hint="run `edgekit validate` on a Mac; on Linux the package is checked "
                     "structurally at export")
        return super().load(model_path, threads)
