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


def module_path(node: Any) -> str:
    """The module a torch.export / FX node came from (`stage.blocks.3.attn`), `<model>` for
    the top level: how findings and errors name where a tensor is."""
    stack = node.meta.get("nn_module_stack") if hasattr(node, "meta") else None
    if not stack:
        return "<model>"
    return str(list(stack.values())[-1][0]) or "<model>"


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
    """Run the fp32 model over the calibration samples watching every aten op's output (a
    TorchDispatchMode) and which module is running (forward hooks): the first tensors with
    NaN/Inf are named `op#k` (the k-th call of that op) with their module path, whether they
    come from a module or from functional code inside a forward."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from edgekit.support import op_name

    stack: list[str] = []
    found: list[RangeFinding] = []
    calls: dict[str, int] = {}

    class Watch(TorchDispatchMode):  # type: ignore[misc]
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = op_name(func)
            calls[name] = calls.get(name, 0) + 1
            if len(found) < limit:
                for t in tree_flatten(out)[0]:
                    if isinstance(t, torch.Tensor) and t.is_floating_point() and not bool(
                            torch.isfinite(t).all()):
                        what = "nan" if bool(torch.isnan(t).any()) else (
                            "inf" if bool((t == float("inf")).any()) else "-inf")
                        found.append(RangeFinding(f"{name}#{calls[name]}", "non-finite",
                                                  float(what), float(what),
                                                  stack[-1] if stack else "<model>", name))
                        break
            return out

    def enter(name: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            stack.append(name)
        return hook

    def leave(module: Any, args: Any, out: Any) -> None:
        stack.pop()

    handles = []
    for mod_name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(enter(mod_name or "<model>")))
        handles.append(module.register_forward_hook(leave))

    def run(x: np.ndarray) -> bool:
        """Whether the model output is non-finite for x (found collects the tensors)."""
        calls.clear()
        with Watch():
            out = model(torch.from_numpy(x))
        out = out[0] if isinstance(out, (tuple, list)) else out
        return not bool(torch.isfinite(out).all())

    first: int | None = None
    output_bad = False
    try:
        with torch.no_grad():
            for i in range(0, len(samples), batch):
                output_bad |= run(samples[i:i + batch])
                if found and first is None:
                    for j in range(i, min(i + batch, len(samples))):
                        found.clear()
                        run(samples[j:j + 1])
                        if found:
                            first = j
                            break
                    break  # the first sample names the tensors; the rest need not run
    finally:
        for h in handles:
            h.remove()
    if first is None:
        return NonFiniteScan((), output_bad)
    if not output_bad:  # the first bad batch decided the tensors; check the output on all
        with torch.no_grad():
            for i in range(first - first % batch, len(samples), batch):
                out = model(torch.from_numpy(samples[i:i + batch]))
                out = out[0] if isinstance(out, (tuple, list)) else out
                output_bad |= not bool(torch.isfinite(out).all())
    return NonFiniteScan(tuple(found), output_bad, first)
