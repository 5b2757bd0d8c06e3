"""ONNX Runtime (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from edgekit.errors import ArtifactError, InputMismatch


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
        self.inputs = {i.name: (i.shape, i.type) for i in self._sess.get_inputs()}
        self.output_names = [o.name for o in self._sess.get_outputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, (shape, type_) in self.inputs.items():
            if name not in inputs:
                raise InputMismatch(f"missing input '{name}'; given {sorted(inputs)}",
                                    hint=f"feed '{name}' with shape {shape}")
            given = inputs[name]
            want_dtype = type_.removeprefix("tensor(").removesuffix(")")
            want_dtype = {"float": "float32", "double": "float64"}.get(want_dtype, want_dtype)
            static = [d if isinstance(d, int) else -1 for d in shape]
            if len(static) != given.ndim or any(
                    d != -1 and d != g for d, g in zip(static, given.shape, strict=False)):
                raise InputMismatch(
                    f"input '{name}': expected shape {tuple(shape)}, given {tuple(given.shape)}",
                    hint="check batch size and layout (NCHW vs NHWC)")
            if str(given.dtype) != want_dtype:
                raise InputMismatch(
                    f"input '{name}': expected dtype {want_dtype}, given {given.dtype}",
                    hint=f"cast the input to {want_dtype}")
        outs = self._sess.run(self.output_names, inputs)
        return dict(zip(self.output_names, outs, strict=True))


class OnnxRuntime:
    name: ClassVar[str] = "onnxruntime"
    formats: ClassVar[tuple[str, ...]] = ("onnx",)

    @classmethod
    def available(cls) -> bool:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            return False
        return True

    @classmethod
    def version(cls) -> str:
        import onnxruntime

        return str(onnxruntime.__version__)

    def load(self, model_path: Path, threads: int | None = None) -> OnnxRuntimeSession:
        return OnnxRuntimeSession(model_path, threads)
