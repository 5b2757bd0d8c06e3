"""ONNX Runtime (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from edgekit.runtimes.checks import check_inputs

from edgekit.errors import ArtifactError
from edgekit.runtime import PackageRuntime

_ORT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
              "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int32)": "int32",
              "tensor(int64)": "int64", "tensor(bool)": "bool"}


class OnnxRuntimeSession:
    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=opts,
                                              providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise ArtifactError(f"onnxruntime cannot load the model ({str(exc)[:300]})",
                                path=path, hint="re-export it; the file may be corrupt") from None
        self.inputs = {i.name: (tuple(d if isinstance(d, int) else -1 for d in i.shape),
                                _ORT_TYPES.get(i.type, i.type))
                       for i in self._sess.get_inputs()}
        self.output_names = [o.name for o in self._sess.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        outs = self._sess.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs, strict=True))


class OnnxRuntime(PackageRuntime):
    name: ClassVar[str] = "onnxruntime"
    formats: ClassVar[tuple[str, ...]] = ("onnx",)
    module: ClassVar[str] = "onnxruntime"
    distribution: ClassVar[str] = "onnxruntime"
    session_cls = OnnxRuntimeSession
