"""Pre-flight op support: which ops a target's converter cannot lower (export would fail) and
which would run outside its accelerated delegate — seconds, before a minutes-long export.

One torch.export of the deploy graph feeds every exporter's `check(exported_program)`, which
asks the converter's own registry (torch.onnx's torchlib, litert-torch's lowerings, the XNNPACK
partitioner, coremltools' torch op registry).
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.exporter import EXPORTERS


@dataclass(frozen=True)
class Support:
    format: str
    ops: dict[str, int]  # operators as the converter sees them
    unsupported: dict[str, int] = field(default_factory=dict)  # no lowering: export fails
    fallback: dict[str, int] = field(default_factory=dict)  # outside the delegate (CPU kernels)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.unsupported

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def op_name(target: Any) -> str:
    """aten.conv2d.default -> conv2d; edge ops likewise."""
    name = getattr(target, "__name__", str(target))
    packet = getattr(target, "_overloadpacket", None)
    if packet is not None:
        name = str(getattr(packet, "__name__", name))
    return name.split(".")[0]


def call_targets(graph_module: Any) -> Iterable[Any]:
    for node in graph_module.graph.nodes:
        if node.op == "call_function" and node.target is not operator.getitem:
            yield node.target


def histogram(targets: Iterable[Any]) -> Counter[str]:
    return Counter(op_name(t) for t in targets)


def check_model(model: Any, example: Any, formats: Iterable[str]) -> list[Support]:
    import torch

    with torch.no_grad():
        exported = torch.export.export(model, (example,), strict=False)
    results = []
    for fmt in formats:
        exporter = EXPORTERS.get(fmt)
        try:
            results.append(exporter.check(exported))
        except Exception as exc:  # noqa: BLE001 - a checker failure is itself a finding
            results.append(Support(fmt, {}, {f"<check failed: {type(exc).__name__}>": 1},
                                   note=str(exc).splitlines()[0][:300] if str(exc) else ""))
    return results
