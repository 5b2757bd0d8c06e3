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
        # int8 I/O (`--int8-io`): callers give and get float; the session applies the file's own
        # scale/zero-point, exactly as an app's pre/post-processing would.
        self.inputs = {d["name"]: (tuple(int(s) for s in d["shape"]),
                                   "float32" if _quantized(d) else np.dtype(d["dtype"]).name)
                       for d in self._inputs}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        for d in self._inputs:
            x = inputs[d["name"]]
            if _quantized(d):
                scale, zero = d["quantization"]
                info = np.iinfo(d["dtype"])
                x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(d["dtype"])
            self._interp.set_tensor(d["index"], x)
        self._interp.invoke()
        out = {}
        for d in self._outputs:
            y = self._interp.get_tensor(d["index"]).copy()
            if _quantized(d):
                scale, zero = d["quantization"]
                y = ((y.astype(np.float32) - zero) * scale).astype(np.float32)
            out[d["name"]] = y
        return out


def _quantized(detail: dict) -> bool:  # type: ignore[type-arg]
    scale, _ = detail.get("quantization", (0.0, 0))
    return np.dtype(detail["dtype"]).kind in "iu" and scale != 0.0


class LiteRtRuntime(PackageRuntime):
    name: ClassVar[str] = "litert"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)
    module: ClassVar[str] = "ai_edge_litert.interpreter"
    distribution: ClassVar[str] = "ai-edge-litert"
    session_cls = LiteRtSession
