"""TFLite Micro (PyPI `tflite-micro`): the microcontroller runtime's reference interpreter, the
same C++ kernels an MCU build links, driven from Python. It runs integer TFLite files (what an
MCU without a float unit takes); the tensor arena a model needs is read from TFLM's recording
allocator after a run (`arena_bytes`).

Runs in edgekit's isolated child process like every runtime (validate, run, bench): a native
fault in the interpreter on a bad file cannot take the CLI down.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from edgekit.runtimes.checks import check_inputs

from edgekit.errors import ArtifactError
from edgekit.runtime import PackageRuntime

# TFLM needs its arena up front; 10× the file (the interpreter's own default) holds every model
# edgekit exports, and the recording allocator then reports what was used.
ARENA_FACTOR = 10
_TOTAL = re.compile(rb"Arena allocation total (\d+) bytes")


class TflmSession:
    def __init__(self, path: Path, threads: int | None) -> None:
        from tflite_micro.python.tflite_micro import runtime

        del threads  # TFLM is single-threaded by design
        data = path.read_bytes()
        try:
            self._interp = runtime.Interpreter.from_bytes(data,
                                                          arena_size=len(data) * ARENA_FACTOR)
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"TFLite Micro cannot load the model ({str(exc)[:300]})",
                                path=path, hint="TFLite Micro runs integer files only: export "
                                "--to tflite --quant int-only") from None
        self._inputs = [self._interp.get_input_details(0)]
        self._outputs = [self._interp.get_output_details(0)]
        self._names = _io_names(data)
        (d,) = self._inputs
        dtype = "float32" if _quantized(d) else np.dtype(d["dtype"]).name
        self.inputs = {self._names[0]: (tuple(int(s) for s in d["shape"]), dtype)}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_inputs(self.inputs, inputs)
        (x,) = inputs.values()
        (d,) = self._inputs
        if _quantized(d):
            scale, zero = _params(d)
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(d["dtype"])
        self._interp.set_input(np.ascontiguousarray(x), 0)
        self._interp.invoke()
        y = np.array(self._interp.get_output(0), copy=True)
        (o,) = self._outputs
        if _quantized(o):
            scale, zero = _params(o)
            y = ((y.astype(np.float32) - zero) * scale).astype(np.float32)
        return {self._names[1]: y}

    def arena_bytes(self) -> int:
        """The tensor arena this model used (TFLM's recording allocator, after a run)."""
        saved = os.dup(2)
        with tempfile.TemporaryFile() as log:
            os.dup2(log.fileno(), 2)
            try:
                self._interp.print_allocations()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            log.seek(0)
            found = _TOTAL.search(log.read())
        if not found:
            raise ArtifactError("TFLite Micro did not report its arena allocation")
        return int(found.group(1))


def _io_names(data: bytes) -> tuple[str, str]:
    """The first input's and output's tensor names (TFLM's details carry none)."""
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    sg = fbu.read_model_from_bytearray(bytearray(data)).subgraphs[0]
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise ArtifactError(f"{len(sg.inputs)} inputs / {len(sg.outputs)} outputs: edgekit's "
                            "TFLite Micro adapter runs one-input, one-output models")

    def name(index: int) -> str:
        raw = sg.tensors[index].name
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    return name(sg.inputs[0]), name(sg.outputs[0])


def measure_arena(model_path: str) -> int:
    """Isolated-child body: load, run one all-zero input, return the arena bytes used."""
    session = TflmSession(Path(model_path), None)
    ((name, (shape, dtype)),) = session.inputs.items()
    session.run({name: np.zeros(shape, dtype=dtype)})
    return session.arena_bytes()


def _params(detail: dict[str, Any]) -> tuple[float, int]:
    q = detail["quantization_parameters"]
    return float(q["scales"][0]), int(q["zero_points"][0])


def _quantized(detail: dict[str, Any]) -> bool:
    q = detail.get("quantization_parameters") or {}
    return np.dtype(detail["dtype"]).kind in "iu" and len(q.get("scales", [])) > 0


class TflmRuntime(PackageRuntime):
    name: ClassVar[str] = "tflm"
    formats: ClassVar[tuple[str, ...]] = ("tflite",)
    module: ClassVar[str] = "tflite_micro.python.tflite_micro.runtime"
    distribution: ClassVar[str] = "tflite-micro"
    session_cls = TflmSession
