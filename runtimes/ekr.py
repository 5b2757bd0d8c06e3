"""edgekit's native runtime (kernels_arm/runtime) on this machine: the host build of the
library that the package compiles at install time, through edgekit.kernels.ekr."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekit.errors import InputMismatch, MissingDependency

INPUT, OUTPUT = "input", "output"


class EkrSession:
    def __init__(self, path: Path, threads: int | None) -> None:
        from edgekit.kernels.ekr import EkrModel

        self._model = EkrModel.from_file(path)
        if threads is not None:
            self._model.set_threads(threads)
        self.inputs = {INPUT: (self._model.input_shape, "float32")}
        self.output_names = [OUTPUT]
        self.kernel_paths = self._model.kernel_paths

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if len(inputs) != 1:
            raise InputMismatch(f"the .ekr graph takes one input; given {sorted(inputs)}",
                                hint=f"feed one float32 array of shape "
                                     f"{self._model.input_shape}")
        (x,) = inputs.values()
        if np.asarray(x).dtype != np.float32:
            raise InputMismatch(f"input: expected dtype float32, given {np.asarray(x).dtype}",
                                hint="cast the input to float32")
        return {OUTPUT: self._model.run(x)}


class EkrRuntime:
    name: ClassVar[str] = "ekr"
    formats: ClassVar[tuple[str, ...]] = ("ekr",)

    @classmethod
    def available(cls) -> bool:
        try:
            from edgekit.kernels import library

            library()
        except (MissingDependency, OSError):
            return False
        return True

    @classmethod
    def version(cls) -> str:
        from edgekit import __version__
        from edgekit.kernels import build_info

        return f"edgekit {__version__} ({build_info()})"

    def load(self, model_path: Path, threads: int | None = None) -> EkrSession:
        return EkrSession(model_path, threads)
