"""`--quant int-only` for ONNX: calibrate → IntGraph → integer-only ONNX (see graph.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import TensorSpec
from edgekit.exporter import ExportOptions, ExportResult
from edgekit.runtime import dist_version

FILENAME = "model.onnx"


def export_onnx(model: Any, example: Any, calib: np.ndarray, options: ExportOptions,
                out_dir: Path) -> ExportResult:
    import onnx

    from edgekit.intonly.convert import convert
    from edgekit.intonly.graph import float_violations, to_onnx

    graph = convert(model, example, calib)
    proto = to_onnx(graph)
    proto.graph.input[0].name = options.input_name  # the IR calls them input / logits
    renamed = {graph.input: options.input_name}
    for node in proto.graph.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
    onnx.checker.check_model(proto, full_check=True)
    bad = float_violations(proto)
    if bad:  # a translator bug, never a user error: refuse to write a mislabelled file
        from edgekit.errors import ExportError

        raise ExportError("internal: integer-only graph has float tensors: " + ", ".join(bad[:5]))
    onnx.save(proto, str(out_dir / FILENAME))
    out = proto.graph.output[0]
    return ExportResult(
        file=FILENAME,
        inputs=(TensorSpec(options.input_name, tuple(int(s) for s in example.shape), "float32",
                           "NCHW"),),
        outputs=(TensorSpec(out.name, tuple(graph.output_shape), "float32"),),
        versions={"onnx": onnx.__version__, "onnxruntime": dist_version("onnxruntime")},
        details={"exporter": "edgekit integer-only (I-ViT arithmetic, reference: "
                             "edgekit/intonly/reference.py)",
                 "integer_only": True, "int_ops": dict(Counter(
                     type(op).__name__ for op in graph.ops).most_common()),
                 "ops": dict(Counter(n.op_type for n in proto.graph.node).most_common())})
