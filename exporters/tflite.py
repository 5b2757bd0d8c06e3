"""TFLite (LiteRT): litert-torch converts the torch.export graph to a .tflite flatbuffer.

`--layout nhwc` wraps the model so the file takes channels-last input (what mobile camera
pipelines feed); litert-torch then removes the boundary transposes. After export we load the
file in ai-edge-litert with its default XNNPACK delegate and record which ops it took.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from edgekit.exporters.tflite_rewrite import float_io, float_islands

from edgekit.artifact import TensorSpec
from edgekit.errors import ArtifactError, ExportError, first_line
from edgekit.exporter import ExportOptions, ExportResult, check_file_kind
from edgekit.runtime import dist_version

_MAGIC = b"TFL3"


def _nhwc_wrapper(model: Any) -> Any:
    import torch

    class ChannelsLastInput(torch.nn.Module):
        """y = model(x.permute(0, 3, 1, 2)): NHWC in, same outputs."""

        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> Any:
            return self.inner(x.permute(0, 3, 1, 2))

    return ChannelsLastInput(model).eval()


def _interpreter(path: Path, delegates: bool) -> Any:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = (OpResolverType.AUTO if delegates
                else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interp = Interpreter(model_path=str(path), experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _delegated_ops(path: Path) -> tuple[list[dict[str, Any]], set[int], int]:
    """(ops of the plain interpreter, indices the default XNNPACK delegate takes, partitions).

    The delegated interpreter appends DELEGATE nodes; an original op is delegated when its
    outputs are produced inside a delegate partition, found by walking back from each DELEGATE
    node's outputs to its inputs over the original graph.
    """
    plain = _interpreter(path, delegates=False)
    ops = plain._get_ops_details()
    producer = {t: d["index"] for d in ops for t in d["outputs"]}
    delegated_interp = _interpreter(path, delegates=True)
    delegate_nodes = [d for d in delegated_interp._get_ops_details() if d["op_name"] == "DELEGATE"]
    taken: set[int] = set()
    for node in delegate_nodes:
        boundary = set(int(t) for t in node["inputs"])
        stack = [int(t) for t in node["outputs"]]
        while stack:
            t = stack.pop()
            if t in boundary or t not in producer or producer[t] in taken:
                continue
            taken.add(producer[t])
            stack.extend(int(i) for i in ops[producer[t]]["inputs"] if i >= 0)
    return ops, taken, len(delegate_nodes)


def undelegated_ops(path: Path) -> list[tuple[int, str]]:
    """(operator index, op name) of every op the XNNPACK delegate leaves to the interpreter."""
    ops, taken, _ = _delegated_ops(path)
    return [(d["index"], d["op_name"]) for d in ops if d["index"] not in taken]


def delegation(path: Path) -> dict[str, Any]:
    """Which ops ai-edge-litert's default XNNPACK delegate takes."""
    ops, taken, partitions = _delegated_ops(path)
    left = Counter(d["op_name"] for d in ops if d["index"] not in taken)
    return {"delegate": "XNNPACK (ai-edge-litert default)", "delegated": len(taken),
            "total": len(ops), "share": len(taken) / len(ops) if ops else 0.0,
            "partitions": partitions, "not_delegated": dict(left.most_common())}


class TFLiteExporter:
    format: ClassVar[str] = "tflite"
    filename: ClassVar[str] = "model.tflite"

    def export(self, model: Any, example: Any, options: ExportOptions, out_dir: Path
               ) -> ExportResult:
        import ai_edge_litert
        import litert_torch

        layout = options.layout.upper()
        if layout == "NHWC":
            model = _nhwc_wrapper(model)
            example = example.permute(0, 2, 3, 1).contiguous()
        path = out_dir / self.filename
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log):
                kwargs = dict(options.converter_kwargs)
                int8_io = bool(kwargs.pop("int8_io", False))
                islands = bool(kwargs.pop("float_islands", False))
                edge_model = litert_torch.convert(model, (example,), **kwargs)
                edge_model.export(str(path))
            boundary = [] if int8_io or "quant_config" not in kwargs else float_io(path)
            rewritten = float_islands(path, undelegated_ops) if islands else {}
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - converter errors are many types
            first = first_line(exc)
            raise ExportError(f"litert-torch could not convert the model: "
                              f"{type(exc).__name__}: {first}",
                              hint="run `edgekit check MODEL --to tflite` for unsupported ops; "
                                   "--debug shows the converter's report") from exc
        info = self.describe(path)
        inputs = tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], layout,
                                  t.get("quantization"))
                       for t in info["inputs"])
        outputs = tuple(TensorSpec(t["name"], tuple(t["shape"]), t["dtype"], None,
                                   t.get("quantization"))
                        for t in info["outputs"])
        return ExportResult(
            file=self.filename, inputs=inputs, outputs=outputs,
            versions={"litert-torch": dist_version("litert-torch"),
                      "ai-edge-litert": getattr(ai_edge_litert, "__version__", None)
                      or dist_version("ai-edge-litert")},
            details={"exporter": "litert-torch", "layout": layout, "ops": info["ops"],
                     "float_io_boundary": boundary, "float_islands": rewritten,
                     "delegation": delegation(path)})

    @classmethod
    def check(cls, exported: Any) -> Any:
        """Ops litert-torch has no lowering for, after its own pre-lowering decompositions."""
        import litert_torch.backend.lowerings  # noqa: F401 - registers the lowerings
        from litert_torch import fx_infra
        from litert_torch.backend.lowerings import registry

        from edgekit.support import Support, call_targets, histogram, op_name

        decomposed = fx_infra.safe_run_decompositions(exported, fx_infra.decomp.pre_lower_decomp())
        targets = list(call_targets(decomposed.graph_module))
        missing = Counter(op_name(t) for t in targets if registry.lookup(t) is None)
        return Support("tflite", dict(histogram(targets).most_common()), dict(missing),
                       note="XNNPACK delegation is measured after export (manifest)")

    @classmethod
    def sniff(cls, path: Path) -> None:
        check_file_kind(path, suffix=".tflite", what="a TFLite file", magic=_MAGIC, offset=4,
                        missing_magic="no TFL3 identifier")

    @classmethod
    def describe(cls, path: Path) -> dict[str, Any]:
        import numpy as np

        cls.sniff(path)
        try:
            interp = _interpreter(path, delegates=False)
        except (ValueError, RuntimeError) as exc:
            raise ArtifactError(f"not a loadable TFLite model ({str(exc)[:300]})", path=path,
                                hint="re-export it") from None
        ops = interp._get_ops_details()
        tensors = interp.get_tensor_details()
        produced = {t for d in ops for t in d["outputs"]}
        graph_inputs = {d["index"] for d in interp.get_input_details()}
        constants = [t for t in tensors if t["index"] not in produced
                     and t["index"] not in graph_inputs]

        def spec(d: dict[str, Any]) -> dict[str, Any]:
            q = d.get("quantization_parameters") or {}
            out = {"name": d["name"], "shape": [int(s) for s in d["shape"]],
                   "dtype": np.dtype(d["dtype"]).name}
            if len(q.get("scales", [])):
                out["quantization"] = {"scale": [float(s) for s in q["scales"]],
                                       "zero_point": [int(z) for z in q["zero_points"]]}
            return out

        return {
            "format": "tflite", "file": str(path), "size_bytes": path.stat().st_size,
            "inputs": [spec(d) for d in interp.get_input_details()],
            "outputs": [spec(d) for d in interp.get_output_details()],
            "ops": dict(Counter(d["op_name"] for d in ops).most_common()),
            "n_nodes": len(ops),
            "initializer_dtypes": dict(Counter(np.dtype(t["dtype"]).name
                                               for t in constants).most_common()),
            "params": int(sum(int(np.prod(t["shape"])) for t in constants)),
        }

