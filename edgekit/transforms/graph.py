"""A producer/consumer view of a model, from torch.export, mapped back to module names.

Passes rewrite the eager nn.Module (so every exporter benefits) but decide *where* from the
exported graph: e.g. "this BatchNorm reads only the output of that conv, and nothing else reads
the conv". That is what makes a fold safe, and an eager-module walk cannot see it.
"""

from __future__ import annotations

from typing import Any


def _op_name(node: Any) -> str:
    target = node.target
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def _innermost(node: Any) -> tuple[str, str]:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "", ""
    fqn, type_ = list(stack.values())[-1]
    if isinstance(type_, type):
        type_ = f"{type_.__module__}.{type_.__qualname__}"
    return str(fqn), str(type_)


class GraphView:
    def __init__(self, model: Any, example: Any) -> None:
        import torch

        with torch.no_grad():
            ep = torch.export.export(model, (example,), strict=False)
        self.graph = ep.graph
        self.nodes = [n for n in ep.graph.nodes if n.op == "call_function"]

    @staticmethod
    def op(node: Any) -> str:
        return _op_name(node)

    @staticmethod
    def module_of(node: Any) -> tuple[str, str]:
        return _innermost(node)

    def calls_per_module(self) -> dict[str, int]:
        """How many graph ops each innermost module issued (a reused module appears > once)."""
        counts: dict[str, int] = {}
        for n in self.nodes:
            fqn, _ = _innermost(n)
            counts[fqn] = counts.get(fqn, 0) + 1
        return counts

    def producer_consumer(self, producer_ops: set[str], consumer_ops: set[str]
                          ) -> list[tuple[Any, Any]]:
        """(producer, consumer) node pairs where the consumer's first argument is the producer's
        output and nothing else reads that output."""
        pairs = []
        for n in self.nodes:
            if _op_name(n) not in consumer_ops or not n.args:
                continue
            src = n.args[0]
            if getattr(src, "op", None) != "call_function" or _op_name(src) not in producer_ops:
                continue
            if len(src.users) != 1:
                continue
            pairs.append((src, n))
        return pairs


def get_submodule_parent(model: Any, fqn: str) -> tuple[Any, str]:
    parent_name, _, attr = fqn.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    return parent, attr


def replace_submodule(model: Any, fqn: str, new: Any) -> None:
    parent, attr = get_submodule_parent(model, fqn)
    if attr.isdigit() and hasattr(parent, "__getitem__"):
        parent[int(attr)] = new
    else:
        setattr(parent, attr, new)
