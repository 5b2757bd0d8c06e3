"""ai-edge-litert interpreter (the maintained TFLite runtime), default XNNPACK delegate."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from edgekit.runtimes.checks import check_inputs

from edgekit.errors import ArtifactError
from edgekit.runtime import PackageRuntime


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


class LiteRtRuntime(PackageRuntime):
    name: ClassVar[str] = "litert"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)
    module: ClassVar[str] = "ai_edge_litert.interpreter"
    distribution: ClassVar[str] = "ai-edge-litert"
    session_cls = LiteRtSession
