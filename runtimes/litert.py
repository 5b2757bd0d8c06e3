"""ai-edge-litert interpreter (the maintained TFLite runtime), default XNNPACK delegate."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from edgekit.runtimes.checks import check_inputs

from edgekit.errors import ArtifactError


class LiteRtSession:
    def __init__(self, path: Path, threads: int | None) -> None:
        from ai_edge_litert.interpreter import Interpreter

        try:
            self._interp = Interpreter(model_path=str(path), num_threads=threads or None)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"ai-edge-litert cannot load the model ({str(exc)[:300]})",
                                path=path, hint="re-export it; the file may be corrupt") from None
        self._inputs = self._interp.get_input_details()
        self._outputs = self._interp.get_output_details()
        self.inputs = {d["name"]: (tuple(int(s) for s in d["shape"]), np.dtype(d["dtype"]).name)
                       for d in self._inputs}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        for d in self._inputs:
            self._interp.set_tensor(d["index"], inputs[d["name"]])
        self._interp.invoke()
        return {d["name"]: self._interp.get_tensor(d["index"]).copy() for d in self._outputs}


class LiteRtRuntime:
    name: ClassVar[str] = "litert"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)

    @classmethod
    def available(cls) -> bool:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            return False
        return True

    @classmethod
    def version(cls) -> str:
        import importlib.metadata as md

        return md.version("ai-edge-litert")

    def load(self, model_path: Path, threads: int | None = None) -> LiteRtSession:
        return LiteRtSession(model_path, threads)
