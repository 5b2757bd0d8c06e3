"""ExecuTorch: torch.export -> to_edge_transform_and_lower(XNNPACK partitioner) -> to_executorch
-> model.pte. Delegated vs portable-kernel ops are recorded from get_delegation_info."""

from __future__ import annotations

import contextlib
import io
import operator
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from edgekit.artifact import TensorSpec
from edgekit.errors import ArtifactError, ExportError, first_line
from edgekit.exporter import (
    ExportOptions,
    ExportResult,
    batch_dynamic_shapes,
    check_file_kind,
)
from edgekit.runtime import dist_version

_MAGIC = b"ET"  # bytes 4..8 are "ETxx" (flatbuffer file identifier, xx = schema version)


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def _delegation(graph_module: Any) -> dict[str, Any]:
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    delegated = non_delegated = 0
    not_delegated: Counter[str] = Counter()
    for op, row in info.delegation_by_operator.items():
        if op == "getitem":  # tuple plumbing, not an operator that runs
            continue
        delegated += row.delegated
        non_delegated += row.non_delegated
        if row.non_delegated:
            not_delegated[op.removeprefix("aten_").removesuffix("_default")] += row.non_delegated
    total = delegated + non_delegated
    return {"delegate": "XnnpackBackend", "delegated": delegated, "total": total,
            "share": delegated / total if total else 0.0,
            "partitions": info.num_delegated_subgraphs,
            "not_delegated": dict(not_delegated.most_common())}


def _softmax_after_conv(exported: Any) -> bool:
    from edgekit.support import op_name

    for node in exported.graph.nodes:
        if node.op == "call_function" and op_name(node.target) in ("softmax", "_softmax"):
            src = node.args[0] if node.args else None
            if getattr(src, "op", None) == "call_function" and op_name(src.target) in (
                    "conv2d", "convolution"):
                return True
    return False


def _partitioner(exported: Any) -> tuple[Any, list[str]]:
    """XNNPACK partitioner; softmax stays on portable kernels when it reads a conv output.

    Found here on EfficientFormerV2 (talking-head 1x1 conv → softmax(dim=-1)): with both in one
    XNNPACK partition the conv output stays channels-last and the softmax runs over the wrong
    axis (cosine 0.92 vs fp32). Excluding either config fixes it; softmax is the cheap one.
    """
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    if not _softmax_after_conv(exported):
        return XnnpackPartitioner(), []
    configs = [c for c in ALL_PARTITIONER_CONFIGS if c.__name__ != "SoftmaxConfig"]
    return XnnpackPartitioner(configs=configs), ["softmax (after conv: XNNPACK layout bug)"]


def _check_batch_range(program: Any, wanted: int | None) -> None:
    """The batch range the lowered program keeps: ExecuTorch's lowering can narrow the one
    torch.export proved (EfficientViT-M0 here: [1, 4] became [2, 3]), and the program then
    refuses the bound. Refused at export, naming the range, rather than shipped."""
    x = next(n for n in program.graph.nodes if n.op == "placeholder"
             and n.name not in program.graph_signature.inputs_to_parameters
             and n.name not in program.graph_signature.inputs_to_buffers
             and n.name not in program.graph_signature.inputs_to_lifted_tensor_constants)
    dim = x.meta["val"].shape[0]
    node = getattr(dim, "node", None)
    expr = getattr(node, "expr", None)
    rng = program.range_constraints.get(expr) if expr is not None else None
    lo, hi = (int(rng.lower), int(rng.upper)) if rng is not None else (None, None)
    # a symbolic size's range starts at 2 (sizes 0/1 are specialized by convention; batch 1
    # still runs and is validated); the upper end is what memory planning sizes for
    if expr is None or lo is None or lo > 2 or hi is None or (wanted and hi < wanted):
        got = f"[{lo}, {hi}]" if rng is not None else f"a static {dim}"
        raise ExportError(
            f"ExecuTorch's lowering kept the batch as {got}, not up to {wanted} (one of its "
            "passes narrowed the range torch.export proved, for this model); the program "
            "would refuse larger batches, so it is not shipped",
            hint="export --to executorch with --batch N (one program per batch), or "
                 "--dynamic-batch with --to onnx")


class ExecuTorchExporter:
    format: ClassVar[str] = "executorch"
    filename: ClassVar[str] = "model.pte"

    def export(self, model: Any, example: Any, options: ExportOptions, out_dir: Path
               ) -> ExportResult:
        import torch
        from executorch.exir import EdgeCompileConfig, to_edge_transform_and_lower

        path = out_dir / self.filename
        log = io.StringIO()
        dynamic = batch_dynamic_shapes(options)
        # ExecuTorch's edge IR verifier specializes a symbolic batch to the trace example's
        # (found here: chunk/split then run at batch 1 fails "Attempted to resize a static
        # tensor"); with a dynamic batch it is skipped — the runtime check at batch 1 and the
        # bound validates the program instead.
        config = EdgeCompileConfig(_check_ir_validity=dynamic is None)
        try:
            with contextlib.redirect_stdout(log), torch.no_grad():
                exported = torch.export.export(model, (example,), dynamic_shapes=dynamic,
                                               strict=False)
                partitioner, kept_out = _partitioner(exported)
                edge = to_edge_transform_and_lower(exported, partitioner=[partitioner],
                                                   compile_config=config)
                if dynamic:
                    _check_batch_range(edge.exported_program(), options.dynamic_batch)
                delegation = _delegation(edge.exported_program().graph_module)
                program = edge.to_executorch()
        except ExportError:
            raise
        except Exception as exc:  # noqa: BLE001 - exporter errors are many types
            first = first_line(exc)
            raise ExportError(f"ExecuTorch could not lower the model: {type(exc).__name__}: "
                              f"{first}", hint="run `edgekit check MODEL --to executorch`; "
                                               "--debug shows the full report") from exc
        with open(path, "wb") as f:
            program.write_to_file(f)
        with torch.no_grad():
            out = model(example)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        def shape(t: Any) -> tuple[int, ...]:
            return (-1, *t.shape[1:]) if dynamic else tuple(t.shape)

        inputs = (TensorSpec(options.input_name, shape(example), _dtype_name(example.dtype),
                             "NCHW"),)
        names = [options.output_name] + [f"{options.output_name}_{i}"
                                         for i in range(1, len(outs))]
        outputs = tuple(TensorSpec(n, shape(o), _dtype_name(o.dtype))
                        for n, o in zip(names, outs, strict=True))
        return ExportResult(
            file=self.filename, inputs=inputs, outputs=outputs,
            versions={"executorch": dist_version("executorch")},
            details={"exporter": "torch.export + to_edge_transform_and_lower(XNNPACK)",
                     "delegation": {**delegation, "kept_out": kept_out},
                     **({"dynamic_batch": {"max": options.dynamic_batch,
                                           "ir_verifier": "skipped (it specializes the batch)"}}
                        if dynamic else {})})

    @classmethod
    def check(cls, exported: Any) -> Any:
        """Edge-dialect ops the XNNPACK partitioner leaves to portable CPU kernels."""
        from executorch.exir import to_edge

        from edgekit.support import Support, call_targets, histogram, op_name

        edge = to_edge(exported).exported_program()
        partitioner, _ = _partitioner(exported)
        result = partitioner.partition(edge)
        graph = result.tagged_exported_program.graph_module.graph
        fallback: Counter[str] = Counter()
        for node in graph.nodes:
            if node.op == "call_function" and "delegation_tag" not in node.meta \
                    and node.target is not operator.getitem:
                fallback[op_name(node.target)] += 1
        ops = histogram(call_targets(edge.graph_module))
        return Support("executorch", dict(ops.most_common()), {}, dict(fallback.most_common()),
                       note="non-delegated ops run on ExecuTorch's portable kernels")

    @classmethod
    def sniff(cls, path: Path) -> None:
        check_file_kind(path, suffix=".pte", what="an ExecuTorch program", magic=_MAGIC,
                        offset=4, missing_magic="no ET identifier")

    @classmethod
    def describe(cls, path: Path) -> dict[str, Any]:
        from executorch.runtime import Runtime

        cls.sniff(path)
        try:
            program = Runtime.get().load_program(str(path))
            meta = program.metadata("forward")
        except Exception as exc:  # noqa: BLE001 - the runtime raises RuntimeError/ValueError
            raise ArtifactError(f"not a loadable ExecuTorch program ({str(exc)[:300]})",
                                path=path, hint="re-export it") from None

        def specs(n: int, get: Any, prefix: str) -> list[dict[str, Any]]:
            rows = []
            for i in range(n):
                t = get(i)
                rows.append({"name": f"{prefix}{i}", "shape": [int(s) for s in t.sizes()],
                             "dtype": _SCALAR_TYPES.get(int(t.dtype()), str(t.dtype()))})
            return rows

        ops, params = _program_ops(path)
        return {
            "format": "executorch", "file": str(path), "size_bytes": path.stat().st_size,
            "methods": sorted(program.method_names),
            "inputs": specs(meta.num_inputs(), meta.input_tensor_meta, "input_"),
            "outputs": specs(meta.num_outputs(), meta.output_tensor_meta, "output_"),
            "ops": dict(ops.most_common()), "n_nodes": sum(ops.values()),
            "initializer_dtypes": {}, "params": params,
        }


# ExecuTorch ScalarType codes (c10) -> numpy names.
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16",
                 6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}


def _program_ops(path: Path) -> tuple[Counter[str], int]:
    """Instructions of the forward plan: portable kernel calls by operator, delegate calls by
    backend; params = elements of constant tensors outside delegates (not counted: inside)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    pte = deserialize_pte_binary(path.read_bytes())
    program = getattr(pte, "program", pte)
    plan = program.execution_plan[0]
    ops: Counter[str] = Counter()
    for chain in plan.chains:
        for ins in chain.instructions:
            args = ins.instr_args
            kind = type(args).__name__
            if kind == "KernelCall":
                ops[plan.operators[args.op_index].name] += 1
            elif kind == "DelegateCall":
                ops[f"delegate:{plan.delegates[args.delegate_index].id}"] += 1
    return ops, 0

