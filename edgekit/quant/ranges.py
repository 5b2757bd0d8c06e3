"""Calibration ranges that cannot break a quantizer: zero, constant, near-constant and
non-finite tensors.

Real checkpoints are full of them: zero-initialised attention biases and position embeddings,
dead ReLU channels, pruned branches, all-equal softmax rows, residual branches scaled to zero.
A histogram calibrator (ONNX Runtime percentile / entropy) cannot put 2048 bins on a range of
width 0 or 1e-9, and a zero range gives scale 0. The rules, shared by every target:

| range of the calibrated tensor | kind          | what the quantizer gets                      |
| ------------------------------ | ------------- | -------------------------------------------- |
| max |x| ≤ 1e-30                | zero          | [0, 0] (scale 1, zero point 0: exact)        |
| min == max = c                 | constant      | [min(0,c), max(0,c)]: c is an exact level    |
| max − min ≤ 1e-3 · max |x|     | near-constant | min/max (a histogram cannot resolve it)      |
| NaN or ±Inf seen               | non-finite    | kept float, named with its module            |

A range that includes 0 and ends at c makes c exactly representable (c = scale · 255 for u8,
scale · ±127/128 for s8), so a constant tensor is quantized without error.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

ZERO_ABS = 1e-30
NEAR_CONSTANT_REL = 1e-3

DEGENERATE_KINDS = ("zero", "constant", "near-constant")
ACTIONS = {
    "zero": "range [0, 0]: scale 1, zero point 0 (exact)",
    "constant": "min/max range including 0: the constant is an exact int8 level",
    "near-constant": "min/max range (a histogram cannot resolve it)",
    "non-finite": "kept float (an int8 range cannot hold NaN/Inf)",
}


def classify_range(low: float, high: float) -> str | None:
    """The degenerate kind of a calibrated [low, high], or None for an ordinary range."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "non-finite"
    magnitude = max(abs(low), abs(high))
    if magnitude <= ZERO_ABS:
        return "zero"
    if low == high:
        return "constant"
    if high - low <= NEAR_CONSTANT_REL * magnitude:
        return "near-constant"
    return None


def safe_range(low: float, high: float) -> tuple[float, float]:
    """The range a quantizer should use for a degenerate (finite) tensor."""
    kind = classify_range(low, high)
    if kind == "zero":
        return 0.0, 0.0
    if kind == "constant":
        return min(low, 0.0), max(high, 0.0)
    return low, high


@dataclass(frozen=True)
class RangeFinding:
    """One tensor whose calibration range needed a rule above (manifest: `ranges`)."""

    tensor: str
    kind: str
    low: float
    high: float
    module: str | None = None
    op: str | None = None

    @property
    def action(self) -> str:
        return ACTIONS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for key in ("low", "high"):
            d[key] = d[key] if math.isfinite(d[key]) else str(d[key])
        d["action"] = self.action
        return {k: v for k, v in d.items() if v is not None}


def array_range(values: np.ndarray) -> tuple[float, float, bool]:
    """(min, max) over the finite values, and whether every value was finite."""
    a = np.asarray(values)
    finite = np.isfinite(a)
    all_finite = bool(finite.all())
    if not all_finite:
        a = a[finite]
    if a.size == 0:
        return (math.nan, math.nan, False) if not all_finite else (0.0, 0.0, True)
    return float(a.min()), float(a.max()), all_finite


def finding_for(tensor: str, values: np.ndarray, module: str | None = None,
                op: str | None = None) -> RangeFinding | None:
    """A finding for a calibrated tensor's values, or None if its range is ordinary."""
    low, high, finite = array_range(values)
    if not finite:
        bad = np.asarray(values)[~np.isfinite(values)]
        what = "nan" if np.isnan(bad).any() else ("inf" if (bad > 0).any() else "-inf")
        return RangeFinding(tensor, "non-finite", float(what), float(what), module, op)
    kind = classify_range(low, high)
    return RangeFinding(tensor, kind, low, high, module, op) if kind else None


def summarize(findings: list[RangeFinding]) -> dict[str, Any]:
    """Manifest form: counts per kind and every finding (non-finite ones first)."""
    ordered = sorted(findings, key=lambda f: (f.kind != "non-finite", f.kind, f.tensor))
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return {"degenerate": counts, "findings": [f.to_dict() for f in ordered]}


@dataclass(frozen=True)
class NonFiniteScan:
    """Where the fp32 model itself produces NaN/Inf on (finite) calibration data."""

    findings: tuple[RangeFinding, ...]  # first non-finite tensors, in execution order
    output_non_finite: bool
    sample: int | None = None  # the first calibration sample that shows it

    def describe(self) -> str:
        first = self.findings[0] if self.findings else None
        if first is None:
            return "no tensor could be named"
        op = f" ({first.op})" if first.op else ""
        return f"tensor '{first.tensor}'{op} of module '{first.module}' ({first.low})"


def scan_non_finite(model: Any, samples: np.ndarray, batch: int = 8,
                    limit: int = 5) -> NonFiniteScan:
    """Run the fp32 model over the calibration samples with a hook on every module; only if
    some module output is NaN/Inf, name the first aten tensors that are (torch.export graph,
    with their module path). Cheap when everything is finite (one forward pass per batch)."""
    import torch

    flagged = {"any": False}

    def record(module: Any, args: Any, out: Any) -> None:
        items = out if isinstance(out, (tuple, list)) else (out,)
        if any(isinstance(t, torch.Tensor) and t.is_floating_point()
               and not bool(torch.isfinite(t).all()) for t in items):
            flagged["any"] = True

    def bad(x: np.ndarray) -> tuple[bool, bool]:
        """(some module output non-finite, model output non-finite) for input x."""
        flagged["any"] = False
        out = model(torch.from_numpy(x))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return flagged["any"], not bool(torch.isfinite(out).all())

    handles = [m.register_forward_hook(record) for m in model.modules()]
    first: int | None = None
    output_bad = False
    try:
        with torch.no_grad():
            for i in range(0, len(samples), batch):
                inner, outer = bad(samples[i:i + batch])
                output_bad |= outer
                if (inner or outer) and first is None:
                    first = next(j for j in range(i, min(i + batch, len(samples)))
                                 if any(bad(samples[j:j + 1])))
    finally:
        for h in handles:
            h.remove()
    if first is None:
        return NonFiniteScan((), False)
    return NonFiniteScan(tuple(_name_non_finite(model, samples[first:first + 1], limit)),
                         output_bad, first)


def _name_non_finite(model: Any, x: np.ndarray, limit: int) -> list[RangeFinding]:
    """The first `limit` aten tensors with NaN/Inf for input `x`, with their modules."""
    import torch
    from torch.fx import Interpreter

    from edgekit.check import op_name

    try:
        gm = torch.export.export(model, (torch.from_numpy(x),), strict=False).module()
    except Exception:  # noqa: BLE001 - naming is best effort; the scan already found it
        return []
    found: list[RangeFinding] = []

    class Finder(Interpreter):  # type: ignore[misc]
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            if len(found) < limit and n.op == "call_function":
                items = out if isinstance(out, (tuple, list)) else (out,)
                for t in items:
                    if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(
                            torch.isfinite(t).all()):
                        what = "nan" if bool(torch.isnan(t).any()) else (
                            "inf" if bool((t == float("inf")).any()) else "-inf")
                        stack = n.meta.get("nn_module_stack") or {}
                        module = str(list(stack.values())[-1][0]) if stack else "<model>"
                        found.append(RangeFinding(n.name, "non-finite", float(what),
                                                  float(what), module, op_name(n.target)))
                        break
            return out

    with torch.no_grad():
        Finder(gm).run(torch.from_numpy(x))
    return found
