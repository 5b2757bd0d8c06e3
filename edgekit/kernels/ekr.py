"""The native runtime (kernels_arm/runtime, `ekr.h`) on this machine, through ctypes: it loads a
`.ekr` integer graph (edgekit/intonly/ekr.py writes it) and runs it on the kernels.

    model = EkrModel.from_bytes(path.read_bytes())    # ArtifactError naming what is wrong
    y = model.run(x)                                   # float32 in, float32 out
    model.arena_bytes, model.arena_lower_bound, model.kernel_paths

The library is the package's kernel library (`_ek_kernels`), built at install time.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import ArtifactError, InputMismatch, UsageError
from edgekit.kernels import library

MAX_RANK = 6
_ERR = 512


def _lib() -> ctypes.CDLL:
    lib = library()
    if not getattr(lib, "_ekr_typed", False):
        vp, sz, cp = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p
        lib.ekr_load.argtypes = [vp, sz, ctypes.POINTER(vp), cp, sz]
        lib.ekr_load.restype = ctypes.c_int
        lib.ekr_run.argtypes = [vp, vp, sz, vp, sz, cp, sz]
        lib.ekr_run.restype = ctypes.c_int
        lib.ekr_free.argtypes = [vp]
        lib.ekr_free.restype = None
        for name in ("ekr_input_count", "ekr_output_count"):
            getattr(lib, name).argtypes = [vp]
            getattr(lib, name).restype = sz
        for name in ("ekr_input_shape", "ekr_output_shape"):
            getattr(lib, name).argtypes = [vp, ctypes.POINTER(ctypes.c_int32)]
            getattr(lib, name).restype = ctypes.c_int
        for name in ("ekr_arena_bytes", "ekr_arena_lower_bound"):
            getattr(lib, name).argtypes = [vp]
            getattr(lib, name).restype = ctypes.c_uint64
        lib.ekr_op_count.argtypes = [vp]
        lib.ekr_op_count.restype = ctypes.c_uint32
        lib.ekr_set_threads.argtypes = [vp, ctypes.c_int, cp, sz]
        lib.ekr_set_threads.restype = ctypes.c_int
        lib.ekr_threads.argtypes = [vp]
        lib.ekr_threads.restype = ctypes.c_int
        lib.ekr_kernel_paths.argtypes = [vp]
        lib.ekr_kernel_paths.restype = cp
        lib._ekr_typed = True  # type: ignore[attr-defined]
    return lib


class EkrModel:
    """A loaded .ekr graph (the C runtime owns a copy of the bytes and its arena)."""

    def __init__(self, handle: int, source: str) -> None:
        self._handle = ctypes.c_void_p(handle)
        self.source = source
        lib = _lib()
        self.input_shape = self._shape(lib.ekr_input_shape)
        self.output_shape = self._shape(lib.ekr_output_shape)
        self.arena_bytes = int(lib.ekr_arena_bytes(self._handle))
        self.arena_lower_bound = int(lib.ekr_arena_lower_bound(self._handle))
        self.op_count = int(lib.ekr_op_count(self._handle))
        self.kernel_paths = dict(item.split("=", 1) for item in
                                 lib.ekr_kernel_paths(self._handle).decode().split())

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bytes>") -> EkrModel:
        err = ctypes.create_string_buffer(_ERR)
        handle = ctypes.c_void_p()
        buf = ctypes.create_string_buffer(data, len(data)) if data else None
        rc = _lib().ekr_load(ctypes.cast(buf, ctypes.c_void_p) if buf else None, len(data),
                             ctypes.byref(handle), err, _ERR)
        if rc or not handle.value:
            raise ArtifactError(f"the edgekit runtime rejects this .ekr file: "
                                f"{err.value.decode(errors='replace')}",
                                path=Path(source) if source != "<bytes>" else None,
                                hint="re-export it (edgekit export MODEL --quant int-only "
                                     "--to ekr)")
        return cls(handle.value, source)

    @classmethod
    def from_file(cls, path: Path) -> EkrModel:
        return cls.from_bytes(Path(path).read_bytes(), str(path))

    MAX_THREADS = 64

    def set_threads(self, threads: int) -> None:
        """Worker threads for the heavy ops (the output does not depend on the count)."""
        if not 1 <= threads <= self.MAX_THREADS:
            raise UsageError(f"{threads} threads: the edgekit runtime takes 1 to "
                             f"{self.MAX_THREADS}", hint="pass --threads 1..64")
        err = ctypes.create_string_buffer(_ERR)
        if _lib().ekr_set_threads(self._handle, threads, err, _ERR):
            raise UsageError(f"cannot start {threads} threads: "
                             f"{err.value.decode(errors='replace')}", hint="use fewer threads")

    @property
    def threads(self) -> int:
        return int(_lib().ekr_threads(self._handle))

    def _shape(self, fn: Any) -> tuple[int, ...]:
        dims = (ctypes.c_int32 * MAX_RANK)()
        rank = fn(self._handle, dims)
        return tuple(int(d) for d in dims[:rank])

    def run(self, x: np.ndarray) -> np.ndarray:
        """One inference per leading row when x has one more axis than the input (a batch of
        whole inputs), else x must be the input shape."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape == self.input_shape:
            return self._run_one(x)
        if x.ndim == len(self.input_shape) and x.shape[1:] == self.input_shape[1:] \
                and self.input_shape[0] == 1:
            return np.concatenate([self._run_one(x[i:i + 1]) for i in range(x.shape[0])])
        raise InputMismatch(f"input of shape {x.shape}; the model takes {self.input_shape}",
                            hint="resize/crop to the model's input shape (edgekit run uses "
                                 "the manifest's preprocessing)")

    def _run_one(self, x: np.ndarray) -> np.ndarray:
        y = np.empty(self.output_shape, dtype=np.float32)
        err = ctypes.create_string_buffer(_ERR)
        rc = _lib().ekr_run(self._handle, x.ctypes.data, x.size, y.ctypes.data, y.size, err,
                            _ERR)
        if rc:
            raise InputMismatch(err.value.decode(errors="replace"))
        return y

    def close(self) -> None:
        if self._handle and self._handle.value:
            _lib().ekr_free(self._handle)
            self._handle = ctypes.c_void_p()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            return
