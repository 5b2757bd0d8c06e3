"""ONNX: torch.onnx dynamo exporter -> onnxscript optimizer -> onnx.checker (full_check).

Static shapes, or a dynamic batch dimension ("batch") with --dynamic-batch; beside model.onnx,
the ORT format (model.ort) and its reduced-build operator config. torch and onnx are imported
inside methods so `describe` can run where only onnx is installed.
"""

from __future__ import annotations

import contextlib
import io
import os
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

_ONNX_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
                7: "int64", 9: "bool", 10: "float16", 11: "float64", 12: "uint32", 13: "uint64",
                16: "bfloat16"}


def _spec(value_info: Any, layout: str | None) -> TensorSpec:
    t = value_info.type.tensor_type
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return TensorSpec(value_info.name, shape, _ONNX_DTYPES.get(t.elem_type, str(t.elem_type)),
                      layout)


def _iter_graphs(graph: Any) -> Any:
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.g is not None and attr.HasField("g"):
                yield from _iter_graphs(attr.g)
            for g in attr.graphs:
                yield from _iter_graphs(g)


def check_external_data(model: Any, base_dir: Path) -> None:
    """Refuse external-data locations outside the model's directory (CVE-2022-25882 class)."""
    from onnx.external_data_helper import _get_all_tensors

    base = base_dir.resolve()
    for tensor in _get_all_tensors(model):
        if tensor.data_location != 1:  # TensorProto.EXTERNAL
            continue
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (base / location).resolve()
        if (not location or os.path.isabs(location) or ".." in Path(location).parts
                or base not in target.parents):
            raise ArtifactError(
                f"tensor '{tensor.name}' points its external data outside the model directory "
                f"({location!r}); refused before reading", path=base,
                hint="only load ONNX files whose external data lies beside them")


class OnnxExporter:
    format: ClassVar[str] = "onnx"
    filename: ClassVar[str] = "model.onnx"

    def export(self, model: Any, example: Any, options: ExportOptions, out_dir: Path
               ) -> ExportResult:
        import onnx
        import onnxscript
        import torch

        path = out_dir / self.filename
        with torch.no_grad():
            reference = model(example)
        n_out = len(reference) if isinstance(reference, (tuple, list)) else 1
        output_names = [options.output_name] + [f"{options.output_name}_{i}"
                                                for i in range(1, n_out)]
        log = io.StringIO()
        try:
            with contextlib.redirect_stdout(log):
                program = torch.onnx.export(
                    model, (example,), dynamo=True, opset_version=options.opset,
                    input_names=[options.input_name], output_names=output_names,
                    dynamic_shapes=batch_dynamic_shapes(options), optimize=True,
                    verbose=False)
                assert program is not None
                program.save(str(path))
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - converter errors are many types
            raise ExportError(
                f"torch.onnx (dynamo) could not export the model: {type(exc).__name__}: "
                f"{first_line(exc)}",
                hint="run with --debug for the converter's report; try another --opset") from exc
        try:
            onnx.checker.check_model(str(path), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"exported ONNX fails onnx.checker: {str(exc)[:300]}",
                              path=path, hint="report the model; try another --opset") from exc
        proto = onnx.load(str(path), load_external_data=False)
        opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
        inputs = tuple(_spec(v, "NCHW") for v in proto.graph.input)
        outputs = tuple(_spec(v, None) for v in proto.graph.output)
        return ExportResult(
            file=self.filename, inputs=inputs, outputs=outputs,
            versions={"onnx": onnx.__version__, "onnxscript": onnxscript.__version__},
            details={"opset": int(opset), "exporter": "torch.onnx dynamo + onnxscript optimizer",
                     "ops": dict(Counter(n.op_type for n in proto.graph.node).most_common()),
                     **({"dynamic_batch": {"max": options.dynamic_batch}}
                        if options.dynamic_batch else {})})

    @classmethod
    def check(cls, exported: Any) -> Any:
        """Ops with no torchlib translation after torch.onnx's own decompositions."""
        from torch.onnx._internal.exporter import _decomp, _registration

        from edgekit.support import Support, call_targets, histogram, op_name

        registry = _registration.ONNXRegistry.from_torchlib()
        table = _decomp.create_onnx_friendly_decomposition_table(
            set(_decomp.get_onnx_implemented_overloads(registry)))
        decomposed = exported.run_decompositions(table)
        targets = list(call_targets(decomposed.graph_module))
        missing = Counter(op_name(t) for t in targets if not registry.is_registered(t))
        return Support("onnx", dict(histogram(targets).most_common()), dict(missing),
                       note="ONNX Runtime's CPU EP runs every standard op")

    @classmethod
    def sniff(cls, path: Path) -> None:
        # A ModelProto starts with field 1 (ir_version, varint): tag byte 0x08.
        check_file_kind(path, suffix=".onnx", what="an ONNX file", magic=b"\x08", offset=0,
                        missing_magic="no ModelProto header")

    @classmethod
    def describe(cls, path: Path) -> dict[str, Any]:
        import numpy as np
        import onnx
        from google.protobuf.message import DecodeError

        cls.sniff(path)
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except (DecodeError, ValueError, RuntimeError) as exc:
            raise ArtifactError(f"not a readable ONNX model (truncated or corrupt: {exc})",
                                path=path, hint="re-export it") from None
        check_external_data(proto, path.parent)
        try:
            onnx.checker.check_model(str(path), full_check=False)
        except (onnx.checker.ValidationError, ValueError) as exc:
            raise ArtifactError(f"ONNX model fails onnx.checker ({str(exc)[:300]})", path=path,
                                hint="re-export it") from None
        ops: Counter[str] = Counter()
        for graph in _iter_graphs(proto.graph):
            ops.update(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                       for n in graph.node)
        for fn in proto.functions:
            ops.update(f"{fn.domain}.{n.op_type}" for n in fn.node)
        dtypes: Counter[str] = Counter()
        params = 0
        for init in proto.graph.initializer:
            dtypes[_ONNX_DTYPES.get(init.data_type, str(init.data_type))] += 1
            params += int(np.prod(init.dims)) if len(init.dims) else 1
        return {
            "format": "onnx",
            "file": str(path),
            "size_bytes": path.stat().st_size,
            "ir_version": proto.ir_version,
            "opsets": {o.domain or "ai.onnx": o.version for o in proto.opset_import},
            "producer": f"{proto.producer_name} {proto.producer_version}".strip(),
            "inputs": [vars_spec(_spec(v, None)) for v in proto.graph.input],
            "outputs": [vars_spec(_spec(v, None)) for v in proto.graph.output],
            "ops": dict(ops.most_common()),
            "n_nodes": sum(ops.values()),
            "initializer_dtypes": dict(dtypes.most_common()),
            "params": params,
        }


def vars_spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}


# --- ORT format: what onnxruntime-mobile (a minimal build) loads -------------------------------

ORT_FILE = "model.ort"
ORT_MAGIC = b"ORTM"  # flatbuffer file identifier at bytes 4..8


def sniff_ort(path: Path) -> None:
    check_file_kind(path, suffix=".ort", what="an ORT format model", magic=ORT_MAGIC,
                    offset=4, missing_magic="no ORTM identifier")


def write_ort_format(onnx_path: str) -> dict[str, Any]:
    """Child-process body: onnxruntime's own converter (tools.convert_onnx_models_to_ort),
    fixed optimizations at its default level with the x86-only NCHWc layout excluded
    (target_platform=arm: the file runs on phones and on the host alike), and the
    reduced-build configuration (operators and types) a minimal onnxruntime build takes."""
    import logging
    import re

    import onnxruntime
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    path = Path(onnx_path)
    log = io.StringIO()
    logging.getLogger("ort_format_model.utils").setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(log):
            convert_onnx_models_to_ort(path, output_dir=path.parent,
                                       optimization_styles=[OptimizationStyle.Fixed],
                                       target_platform="arm", enable_type_reduction=True)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
        raise ExportError(f"onnxruntime could not convert the model to the ORT format: "
                          f"{type(exc).__name__}: {first_line(exc)}", path=path,
                          hint="every ONNX artifact carries its ORT format: report the model "
                               "with this message") from None
    ort_path = path.with_suffix(".ort")
    configs = sorted(path.parent.glob(f"{path.stem}.required_operators*.config"))
    if not ort_path.is_file() or not configs:
        raise ExportError("onnxruntime's converter wrote no .ort or operator config",
                          path=path, hint="report the model with --debug output")
    sniff_ort(ort_path)
    lines = [line for line in configs[0].read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    # the converter's header names the temporary path it read: name the artifact's file
    configs[0].write_text(f"# Generated from {ort_path.name}\n" + "\n".join(lines) + "\n")
    ops = sorted({f"{line.split(';')[0]}.{op}" for line in lines
                  for op in re.findall(r"(?:^|,)([A-Za-z]\w*)", line.split(";", 2)[-1])})
    return {"kind": "ort-format", "file": ort_path.name, "runtime": "onnxruntime",
            "operator_config": configs[0].name, "operators": ops,
            "optimization": "fixed, level all, NCHWc layout excluded (target_platform arm)",
            "converter": f"onnxruntime.tools.convert_onnx_models_to_ort "
                         f"{onnxruntime.__version__}"}


class _OrtFormat:
    """The "ort-format" entry of edgekit.exporter.COMPANIONS."""
    write = staticmethod(write_ort_format)
    sniff = staticmethod(sniff_ort)


ORT_FORMAT = _OrtFormat()
