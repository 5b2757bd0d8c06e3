"""ONNX nodes -> PyTorch module paths.

The dynamo exporter writes each node's module scopes into its metadata
(`pkg.torch.onnx.name_scopes`: ['', 'stages', 'stages.0', ..., '<fx node>']). ONNX Runtime's
optimizer drops node metadata (quant_pre_process runs it before int8 quantization; the graph a
session executes is optimized again), so a node without it is looked up in a reference graph
that has it: by its name, or what it was called before ORT renamed it ('node_MatMul_6/
MatMulAddFusion', 'x_nchwc', 'x_QuantizeLinear', '..._token_3'), by its output tensor, by the
parameter a weight DequantizeLinear reads ('stem.conv1.weight_DequantizeLinear'), and last by
its graph neighbours (nameless nodes ORT inlines, e.g. HardSwish -> HardSigmoid + Mul).
Measured on fmnist_levit: every node of the fp32 file, the int8 file and both ORT-optimized
graphs resolved, every path in named_modules()."""

from __future__ import annotations

import ast
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from edgekit.layers.modules import LayerRecorder, fill_from_neighbours

SCOPES = "pkg.torch.onnx.name_scopes"
# ORT renames: Graph::GenerateNodeName '<base>_token_<n>', NchwcTransformer '<x>_nchwc', the
# QDQ quantizer '<tensor>_QuantizeLinear' / '_DequantizeLinear(_Output)', QDQ propagation.
_ORT_SUFFIX = re.compile(r"(_token_\d+|_nchwc|_pre_q|_q_to_dq|_post_dq\d*|_dq\d*|_q\d*"
                         r"|_(Quantize|Dequantize)Linear(_Output)?(_\d+)?|_quantized)$")
_PARAM = re.compile(r"\.(weight|bias|running_mean|running_var|scale|gamma|beta"
                    r"|[A-Za-z_]*bias[A-Za-z_]*)$")


def node_keys(model: Any) -> list[str]:
    """A node's key: its name, or '#<index>' for a nameless node (ORT leaves some)."""
    return [n.name or f"#{i}" for i, n in enumerate(model.graph.node)]


def scope_module(node: Any) -> str | None:
    raw = next((p.value for p in node.metadata_props if p.key == SCOPES), None)
    if raw is None:
        return None
    try:
        scopes = list(ast.literal_eval(raw))
    except (ValueError, SyntaxError):
        return None
    mods = [s for s in scopes[:-1] if isinstance(s, str) and s]  # the last is the fx node
    return mods[-1] if mods else ""


def name_variants(name: str) -> list[str]:
    """`name` and what it was before ORT renamed it (most specific first)."""
    out = [name]
    cur = name.split("/")[0]  # '<orig>/MatMulAddFusion', '<q>/duplicated'
    for _ in range(4):
        if cur and cur not in out:
            out.append(cur)
        nxt = _ORT_SUFFIX.sub("", cur)
        if nxt == cur:
            break
        cur = nxt
    return out


class Reference:
    """Node-name and tensor-name lookups into a graph whose node modules are known."""

    def __init__(self, model: Any, modules: dict[str, str]) -> None:
        self.by_node: dict[str, str] = {}
        self.by_tensor: dict[str, str] = {}
        for key, n in zip(node_keys(model), model.graph.node, strict=True):
            path = modules.get(key)
            if path is None:
                continue
            self.by_node[key] = path
            for t in n.output:
                self.by_tensor[t] = path

    def lookup(self, node: Any) -> str | None:
        for i, v in enumerate(name_variants(node.name) if node.name else []):
            if v in self.by_node:
                return self.by_node[v]
            if i and v in self.by_tensor:  # '<tensor>_nchwc', '<tensor>_QuantizeLinear'
                return self.by_tensor[v]
        for t in node.output:
            for v in name_variants(t):
                if v in self.by_tensor:
                    return self.by_tensor[v]
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            for v in name_variants(node.name):
                m = _PARAM.search(v)
                if m and "." in v:  # a weight's DQ: the module owning the parameter
                    return v[:m.start()]
        return None


def resolve(model: Any, reference: Reference | None = None) -> tuple[dict[str, str],
                                                                   dict[str, int]]:
    """{node key: module path} for every node of `model` that can be placed."""
    keys = node_keys(model)
    found: dict[str, str] = {}
    counts = {"metadata": 0, "reference": 0}
    for k, n in zip(keys, model.graph.node, strict=True):
        path = scope_module(n)
        how = "metadata"
        if path is None and reference is not None:
            path, how = reference.lookup(n), "reference"
        if path is not None:
            found[k] = path
            counts[how] += 1
    producer = {t: k for k, n in zip(keys, model.graph.node, strict=True) for t in n.output}
    consumers: dict[str, list[str]] = {}
    producers: dict[str, list[str]] = {}
    for k, n in zip(keys, model.graph.node, strict=True):
        for t in n.input:
            if t in producer:
                consumers.setdefault(producer[t], []).append(k)
                producers.setdefault(k, []).append(producer[t])
    filled = fill_from_neighbours(keys, found, consumers, producers)
    counts.update(neighbour=len(filled), unresolved=len(keys) - len(found) - len(filled))
    return {**found, **filled}, counts


def load_graph(source: Path | bytes) -> Any:
    """The graph without its weights (external data is not loaded)."""
    import onnx

    if isinstance(source, bytes):
        return onnx.load_from_string(source)
    return onnx.load(str(source), load_external_data=False)


def _snapshot(file: Path) -> Reference:
    model = load_graph(file)
    return Reference(model, resolve(model)[0])


def _record(file: Path, snapshot: Reference | None, known: Collection[str]
            ) -> tuple[dict[str, str], dict[str, int]]:
    return resolve(load_graph(file), snapshot)


RECORDER = LayerRecorder("onnx node", _record, _snapshot)


def executed_modules(executed: Any, artifact_model: Any, artifact_ops: dict[str, str]
                     ) -> dict[str, str]:
    """{executed node key: module path} for the graph ONNX Runtime ran (its optimized model),
    through the artifact file's node map."""
    return resolve(executed, Reference(artifact_model, artifact_ops))[0]
