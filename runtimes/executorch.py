"""ExecuTorch's Python runtime (the pybindings of the C++ runtime, XNNPACK backend linked in)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from edgekit.runtimes.checks import check_inputs

from edgekit.errors import ArtifactError, InputMismatch
from edgekit.runtime import PackageRuntime

_SCALAR_TYPES = {0: "uint8", 1: "int8", 3: "int32", 4: "int64", 5: "float16", 6: "float32",
                 7: "float64", 11: "bool"}


class ExecuTorchSession:
    def __init__(self, path: Path, threads: int | None) -> None:
        from executorch.runtime import Runtime

        try:
            program = Runtime.get().load_program(str(path))
        except Exception as exc:  # noqa: BLE001 - runtime raises RuntimeError/ValueError
            raise ArtifactError(f"ExecuTorch cannot load the program ({str(exc)[:300]})",
                                path=path, hint="re-export it; the file may be corrupt") from None
        try:
            self._method = program.load_method("forward")
            meta = program.metadata("forward")
        except Exception as exc:  # noqa: BLE001
            # The file parsed; initialising its method failed, typically a delegate (XNNPACK)
            # refusing a lowered node. The runtime logs which one on stderr.
            raise ArtifactError(
                f"ExecuTorch read the program but cannot initialise its forward method "
                f"({str(exc)[:300]})", path=path,
                hint="a backend delegate rejected a lowered op: the runtime's log above names "
                     "it (e.g. 'Failed to create StaticConstantPad node'); re-export with "
                     "--keep-float for that op's kind, or without --quant, and report it") from None
        self._input_names = [f"input_{i}" for i in range(meta.num_inputs())]
        self.inputs = {}
        # A program's metadata gives the planned (largest) sizes, not whether a dimension is
        # dynamic: the batch is checked against that bound, and a static program run at
        # another batch is reported as such when the runtime refuses it.
        self._batch_bound: int | None = None
        for i, name in enumerate(self._input_names):
            t = meta.input_tensor_meta(i)
            sizes = tuple(int(s) for s in t.sizes())
            if i == 0 and len(sizes) == 4:
                self._batch_bound, sizes = sizes[0], (-1, *sizes[1:])
            self.inputs[name] = (sizes, _SCALAR_TYPES.get(int(t.dtype()), str(t.dtype())))
        self._n_out = meta.num_outputs()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        # Programs have positional inputs: map the caller's names in order.
        feed = dict(zip(self._input_names, inputs.values(), strict=False))
        check_inputs(self.inputs, feed)
        batch = next(iter(feed.values())).shape[0] if feed else None
        if self._batch_bound is not None and batch is not None and batch > self._batch_bound:
            raise InputMismatch(f"batch {batch} exceeds the program's largest batch "
                                f"{self._batch_bound}",
                                hint="run in chunks, or re-export with --dynamic-batch "
                                     "--max-batch N")
        try:
            outs = self._method.execute([torch.from_numpy(np.ascontiguousarray(v))
                                         for v in feed.values()])
        except RuntimeError as exc:
            if batch is not None and batch != self._batch_bound:
                raise InputMismatch(
                    f"the program refused batch {batch} ({str(exc)[:120]}): its batch is "
                    f"static ({self._batch_bound})",
                    hint=f"feed batches of {self._batch_bound}, or re-export with "
                         "--dynamic-batch") from None
            raise
        return {f"output_{i}": o.numpy().copy() for i, o in enumerate(outs)}


class ExecuTorchRuntime(PackageRuntime):
    name: ClassVar[str] = "executorch"
    formats: ClassVar[tuple[str, ...]] = ("executorch",)
    module: ClassVar[str] = "executorch.runtime"
    distribution: ClassVar[str] = "executorch"
    session_cls = ExecuTorchSession
