"""PT2E post-training quantization shared by the torch-side targets (ExecuTorch, TFLite, Core ML).

export ─► prepare_pt2e(target quantizer) ─► calibrate once ─► [sensitivity: float sites] ─►
convert_pt2e ─► the target's exporter

The target quantizer decides *what* is quantized (its kernels); this module decides the
activation observer (`--calib-method`), which op kinds stay float (`--keep-float OPS`), and, for
`--keep-float auto`, which individual sites stay float: every site is floated in turn with its
quantized neighbours (sensitivity.py) in the one calibrated graph (no re-calibration), and the
neighbourhoods whose float-ness buys the most logit cosine are kept float, greedily, until the
budget holds. A float site computes in float; its activation edges stay int8 where the other
end is still a quantized site (`_float_sites`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.calibration import CalibrationSet
from edgekit.errors import UsageError
from edgekit.quant.config import QuantConfig
from edgekit.quant.ranges import RangeFinding, classify_range, module_path, summarize
from edgekit.quant.sensitivity import choose_float_sites

# Smallest activation scale the PT2E targets' observers may pick (their `eps`).
OBSERVER_EPS = 2**-12

# aten targets per user-facing op kind (for --keep-float OPS and site naming).
KIND_OF_TARGET = {
    "conv2d": "conv", "convolution": "conv", "conv1d": "conv",
    "linear": "linear", "addmm": "linear",
    "add": "add", "add_": "add", "mul": "mul", "mul_": "mul",
    "cat": "concat", "concat": "concat",
    "adaptive_avg_pool2d": "pool", "avg_pool2d": "pool", "max_pool2d": "pool",
    "softmax": "softmax", "_softmax": "softmax",
    "matmul": "matmul", "bmm": "matmul",
    "gelu": "gelu", "gelu_": "gelu",
}


def node_kind(node: Any) -> str | None:
    from edgekit.support import op_name

    if node.op != "call_function":
        return None
    kind = KIND_OF_TARGET.get(op_name(node.target))
    if kind == "conv" and _conv_groups(node) > 1:
        return "dwconv"
    return kind


def _conv_groups(node: Any) -> int:
    """groups of an aten conv2d / convolution node (positional or keyword)."""
    from edgekit.support import op_name

    index = 6 if op_name(node.target) in ("conv2d", "conv1d") else 8
    if len(node.args) > index:
        return int(node.args[index])
    return int(node.kwargs.get("groups", 1))


def activation_observer(method: str, percentile: float, target: str, **kwargs: Any) -> Any:
    """Observer constructor for activations (one `with_args`: torchao reads the class name of
    the partial). `mse` is torch's HistogramObserver (it searches the clipping range that
    minimises the L2 quantization error of the histogram). Every one of them observes only
    the finite values and remembers having seen NaN/Inf (`non_finite_seen`), so that tensor
    is kept float afterwards instead of getting an infinite (or silently clipped) range."""
    from torchao.quantization.pt2e.observer import HistogramObserver, MinMaxObserver

    if method == "minmax":
        return _finite_observer_cls(MinMaxObserver).with_args(**kwargs)
    if method == "mse":
        return _finite_observer_cls(HistogramObserver).with_args(**kwargs)
    if method == "percentile":
        return _finite_observer_cls(_percentile_observer_cls()).with_args(
            percentile=percentile, **kwargs)
    raise UsageError(f"--calib-method {method} is not available for {target}",
                     hint="use minmax, percentile or mse (entropy/KL: --to onnx only)")


_FINITE_CLASSES: dict[Any, Any] = {}


def _finite_observer_cls(base: Any) -> Any:
    """`base` observing only finite values; `non_finite_seen` says 'nan' / 'inf' / None."""
    if base in _FINITE_CLASSES:
        return _FINITE_CLASSES[base]
    import torch

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        base.__init__(self, *args, **kwargs)
        self.non_finite_seen = None

    def forward(self: Any, x_orig: torch.Tensor) -> torch.Tensor:
        x = x_orig.detach()
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            self.non_finite_seen = "nan" if bool(torch.isnan(x).any()) else "inf"
            x = x[finite]
            if x.numel() == 0:
                return x_orig
        base.forward(self, x)
        return x_orig

    cls = type(f"Finite{base.__name__.lstrip('_')}", (base,),
               {"__init__": __init__, "forward": forward, "__module__": __name__})
    _FINITE_CLASSES[base] = cls
    return cls


def _percentile_observer_cls() -> Any:
    import torch
    from torchao.quantization.pt2e.observer import MinMaxObserver

    class _PercentileObserver(MinMaxObserver):  # type: ignore[misc, valid-type]
        """Range = the [100-p, p] percentiles of a reservoir of observed values (up to 64k
        values per batch, seeded), instead of the extreme min/max."""

        def __init__(self, *args: Any, percentile: float = 99.99, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.percentile = percentile
            self._reservoir: list[torch.Tensor] = []
            self._gen = torch.Generator().manual_seed(0)

        def forward(self, x_orig: torch.Tensor) -> torch.Tensor:
            if x_orig.numel() == 0:
                return x_orig
            x = x_orig.detach().float().flatten()
            if x.numel() > 65536:
                x = x[torch.randint(0, x.numel(), (65536,), generator=self._gen)]
            self._reservoir.append(x)
            values = torch.cat(self._reservoir)
            q = torch.tensor([1 - self.percentile / 100, self.percentile / 100])
            lo, hi = torch.quantile(values, q) if values.numel() <= 2**24 else (
                values.min(), values.max())
            self.min_val.resize_(lo.shape).copy_(lo)
            self.max_val.resize_(hi.shape).copy_(hi)
            return x_orig

    return _PercentileObserver


class _LazyPercentile:
    """Defers the torchao import until a percentile observer is actually requested."""

    def with_args(self, **kwargs: Any) -> Any:
        return _percentile_observer_cls().with_args(**kwargs)


PercentileObserver = _LazyPercentile()


def with_activation_observer(qconfig: Any, observer: Any) -> Any:
    """A copy of a quantizer's QuantizationConfig whose activation specs use `observer`."""
    changes = {}
    for name in ("input_activation", "output_activation"):
        spec = getattr(qconfig, name, None)
        if spec is not None and not getattr(spec, "is_dynamic", False):
            changes[name] = dataclasses.replace(spec, observer_or_fake_quant_ctr=observer)
    return dataclasses.replace(qconfig, **changes)


@dataclass
class Pt2eResult:
    module: Any  # converted GraphModule, ready for the target's exporter
    float_sites: list[str] = field(default_factory=list)
    sites: int = 0
    cosine_all_int8: float | None = None
    cosine_final: float | None = None
    sensitivity: list[dict[str, Any]] = field(default_factory=list)
    findings: list[RangeFinding] = field(default_factory=list)  # degenerate ranges
    float_reasons: dict[str, str] = field(default_factory=dict)  # site -> why it is float
    rewrites: dict[str, int] = field(default_factory=dict)  # graph rewrite -> nodes changed

    def details(self) -> dict[str, Any]:
        return {"sites": self.sites, "float_sites": self.float_sites,
                "graph_rewrites": self.rewrites,
                "holdout_cosine_all_int8": self.cosine_all_int8,
                "holdout_cosine": self.cosine_final,
                "sensitivity_top": self.sensitivity[:10],
                "float_reasons": self.float_reasons, "ranges": summarize(self.findings)}


def _is_observer(gm: Any, node: Any) -> bool:
    from torch.ao.quantization.fake_quantize import FakeQuantizeBase
    from torch.ao.quantization.observer import ObserverBase as TorchObserver
    from torchao.quantization.pt2e.observer import ObserverBase

    return node.op == "call_module" and isinstance(
        gm.get_submodule(node.target),
        (ObserverBase, TorchObserver, FakeQuantizeBase, _simulated_quant_cls()))


@functools.cache
def _simulated_quant_cls() -> Any:
    import torch

    class SimulatedQuant(torch.nn.Module):
        """Stands in for a calibrated observer: quantize → dequantize with its qparams, the
        arithmetic of convert_pt2e's q/dq pairs (quantized_decomposed: round(x · 1/scale)
        + zp, clamped), so the sensitivity ranking can try a float set by editing a graph
        over shared modules instead of copying and converting the model per candidate."""

        def __init__(self, observer: Any) -> None:
            super().__init__()
            self.enabled = getattr(observer, "dtype", torch.float32) in (
                torch.int8, torch.uint8, torch.int16, torch.int32)
            self.per_channel = False
            if not self.enabled:
                return
            scale, zero_point = observer.calculate_qparams()
            self.quant_min, self.quant_max = int(observer.quant_min), int(observer.quant_max)
            self.per_channel = scale.numel() > 1 or observer.qscheme in (
                torch.per_channel_affine, torch.per_channel_symmetric)
            self.axis = int(getattr(observer, "ch_axis", 0))
            self.register_buffer("inv_scale", 1.0 / scale.float())
            self.register_buffer("scale", scale.float())
            self.register_buffer("zero_point", zero_point.float())

        def forward(self, x: Any) -> Any:
            if not self.enabled or not x.is_floating_point():
                return x
            inv: Any = self.inv_scale
            scale: Any = self.scale
            zp: Any = self.zero_point
            if self.per_channel:
                shape = [1] * x.dim()
                shape[self.axis] = -1
                inv, scale, zp = inv.view(shape), scale.view(shape), zp.view(shape)
            q = torch.clamp(torch.round(x * inv) + zp, self.quant_min, self.quant_max)
            return (q - zp) * scale

    return SimulatedQuant


def _float_sites(prepared: Any, names: set[str]) -> Any:
    """Copy of a calibrated prepared graph where the named sites compute in float (their
    weights unquantized). An activation edge leaves int8 only when neither end needs it: an
    edge to or from a quantized site stays int8, since that site's kernel reads and writes int8
    (XNNPACK cannot run a conv with int8 weights and a float output, and ExecuTorch then
    fails with "Missing out variants: dequantize_per_channel"). Floating both ends of an edge
    (`_neighbourhoods`) floats the edge."""
    gm = copy.deepcopy(prepared)
    _edit_float_sites(gm, names)
    return gm


def _edit_float_sites(gm: Any, names: set[str]) -> None:
    """`_float_sites` in place on `gm`'s graph."""
    from edgekit.support import op_name

    quantized = set(_sites(gm)) - set(names)

    def made_by_quantized_site(node: Any) -> bool:
        """`node` is a quantized site's output, or reaches it through fused pass-through ops
        (XNNPACK annotates conv+relu as one pattern: the observer sits after the relu, so
        floating its reader must keep it, or the conv has int8 weights and a float output)."""
        for _ in range(8):
            if node.name in quantized:
                return True
            if node.op != "call_function" or op_name(node.target) not in _PASSTHROUGH \
                    or not node.args or not hasattr(node.args[0], "op"):
                return False
            node = node.args[0]
        return False

    for node in list(gm.graph.nodes):
        if node.name not in names:
            continue
        for arg in list(node.all_input_nodes):
            if _is_observer(gm, arg) and not made_by_quantized_site(arg.args[0]):
                node.replace_input_with(arg, arg.args[0])
        for obs in list(node.users):
            if not _is_observer(gm, obs):
                continue
            for user in list(obs.users):
                if user.name not in quantized:
                    user.replace_input_with(obs, node)
            if not obs.users:
                gm.graph.erase_node(obs)
    gm.graph.eliminate_dead_code()
    gm.recompile()


def _simulator(prepared: Any) -> Callable[[set[str]], Any]:
    """float set -> a module computing what `convert_pt2e(_float_sites(prepared, set))`
    computes, in q/dq simulation: one copy of the model with every observer frozen into a
    _SimulatedQuant, and per call only a new graph over those shared modules."""
    import torch

    root = copy.deepcopy(prepared)
    sim_cls = _simulated_quant_cls()
    for node in root.graph.nodes:
        if _is_observer(root, node):
            parent, _, leaf = node.target.rpartition(".")
            owner = root.get_submodule(parent) if parent else root
            setattr(owner, leaf, sim_cls(root.get_submodule(node.target)))

    def build(names: set[str]) -> Any:
        gm = torch.fx.GraphModule(root, copy.deepcopy(root.graph))
        _edit_float_sites(gm, names)
        return gm

    return build


# aten ops an observer passes through unchanged (shared ranges), for `_neighbourhoods`.
_PASSTHROUGH = {"relu", "relu_", "hardtanh", "hardtanh_", "clamp", "view", "reshape",
                "_unsafe_view", "permute", "transpose", "flatten", "squeeze", "unsqueeze",
                "max_pool2d", "clone", "contiguous", "dropout", "t"}


def _neighbourhoods(prepared: Any, sites: list[str]) -> dict[str, list[str]]:
    """Per site: itself and the sites that produce or consume its activations, through
    observers and the ops in _PASSTHROUGH (see sensitivity.py for why). Constants (weights,
    and observers of weights) are not activations."""
    from edgekit.quant.sensitivity import neighbourhoods
    from edgekit.support import op_name

    nodes = {n.name: n for n in prepared.graph.nodes}

    def inputs(name: str) -> list[str]:
        node = nodes[name]
        if name not in site_set:  # a pass-through node passes its first argument on
            first: Any = node.args[0] if node.args else None
            return [first.name] if hasattr(first, "op") else []
        return [a.name for a in node.all_input_nodes if a.op != "get_attr" and not (
            _is_observer(prepared, a) and a.args[0].op == "get_attr")]

    def passes(name: str) -> bool:
        node = nodes[name]
        return _is_observer(prepared, node) or (
            node.op == "call_function" and op_name(node.target) in _PASSTHROUGH)

    site_set = set(sites)
    return neighbourhoods(sites, inputs, lambda name: [u.name for u in nodes[name].users],
                          passes, depth=8)


def sanitize_observers(prepared: Any, eps: float) -> tuple[list[RangeFinding], set[str]]:
    """After calibration: every per-tensor observer whose range is degenerate is made safe in
    place (quant/ranges.py). Zero ranges are already exact (0 is the zero point); a constant
    c ≠ 0 gets a per-observer eps ≤ |c|/255 so that c is an exact level instead of being
    rounded to the quantizer's minimum scale; a non-finite range (NaN/Inf seen, or a min/max
    observer that ran to ±Inf) cannot be quantized: the compute nodes on both sides of it are
    returned, to be kept float like any other float site."""
    import torch

    findings: list[RangeFinding] = []
    floated: set[str] = set()
    for node in list(prepared.graph.nodes):
        if not _is_observer(prepared, node):
            continue
        obs = prepared.get_submodule(node.target)
        low_t, high_t = getattr(obs, "min_val", None), getattr(obs, "max_val", None)
        if not isinstance(low_t, torch.Tensor) or not isinstance(high_t, torch.Tensor) \
                or low_t.numel() != 1:
            continue  # per-channel weights, fixed-qparams (softmax) or never observed
        low, high = float(low_t), float(high_t)
        if low == float("inf") and high == float("-inf"):
            continue  # never observed (not on the calibration path)
        seen = getattr(obs, "non_finite_seen", None)
        kind = "non-finite" if seen else classify_range(low, high)
        if kind is None:
            continue
        src = node.args[0]
        name = getattr(src, "name", str(node.target))
        op = str(getattr(src, "target", "")) if getattr(src, "op", "") == "call_function" \
            else None
        if kind == "non-finite":
            what = float(seen) if isinstance(seen, str) else (
                low if not math.isfinite(low) else high)
            findings.append(RangeFinding(name, kind, what, what, module_path(src), op))
            floated |= {u.name for u in node.users if not _is_observer(prepared, u)}
            if getattr(src, "op", "") == "call_function":
                floated.add(name)
            continue
        findings.append(RangeFinding(name, kind, low, high, module_path(src), op))
        if kind == "constant":
            level = max(abs(low), abs(high)) / 255.0
            if 0 < level < eps and hasattr(obs, "eps"):
                obs.eps = torch.tensor([level * (1 - 2**-20)], dtype=torch.float32)
    return findings, floated


def _sites(prepared: Any) -> list[str]:
    """Quantized compute sites: annotated nodes whose inputs or output pass an observer."""
    out = []
    for node in prepared.graph.nodes:
        if node_kind(node) is None or node.op != "call_function":
            continue
        observed = any(_is_observer(prepared, a) for a in node.all_input_nodes) or any(
            _is_observer(prepared, u) for u in node.users)
        if observed:
            out.append(node.name)
    return out


def _mean_cosine(module: Any, inputs: list[Any], reference: list[np.ndarray]) -> float:
    import torch

    from edgekit.validate import logit_cosine

    cos = []
    with torch.no_grad():
        for x, ref in zip(inputs, reference, strict=True):
            out = module(x)
            cos.append(logit_cosine(_first(out).numpy(), ref))
    return float(np.mean(cos))


def stamp_source_functions(graph_module: Any) -> int:
    """Give aten add / mul / cat / pooling nodes the `source_fn_stack` meta that only strict
    torch.export records. Quantizers that find ops by source partition (litert-torch's
    PT2EQuantizer for add, mul, cat, pools) otherwise annotate none of them on a non-strict
    graph: every residual add stayed float, with a DEQUANTIZE / QUANTIZE pair around it in the
    .tflite. Each node becomes its own partition. Returns how many nodes were stamped."""
    import operator

    import torch
    import torch.nn.functional as F

    from edgekit.support import op_name

    source_of = {"add": torch.add, "add_": torch.add, "mul": torch.mul, "mul_": torch.mul,
                 "cat": torch.cat, "concat": torch.cat,
                 "adaptive_avg_pool2d": F.adaptive_avg_pool2d,
                 "max_pool2d": F.max_pool2d}
    stamped = 0
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or node.meta.get("source_fn_stack"):
            continue
        fn = source_of.get(op_name(node.target))
        if fn is None or not isinstance(node.args[0], (torch.fx.Node, list, tuple)):
            continue
        if fn is torch.add and not all(isinstance(a, torch.fx.Node) for a in node.args[:2]):
            fn = operator.add  # tensor + scalar: still an add partition
        node.meta["source_fn_stack"] = [(node.name, fn)]
        stamped += 1
    return stamped


def drop_identity_ops(graph_module: Any) -> int:
    """Bypass the ops that return one of their inputs unchanged and that a target's int8 flow
    cannot take (each matcher says why), before PT2E sees the graph. Returns how many."""
    removed = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function":
            continue
        same = next((x for match in _IDENTITY_MATCHERS
                     if (x := match(graph_module, node)) is not None), None)
        if same is not None:
            node.replace_all_uses_with(same)
            graph_module.graph.erase_node(node)
            removed += 1
    if removed:
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
    return removed


def _zero_constant_add(graph_module: Any, node: Any) -> Any:
    """`x + 0` / `x - 0` whose 0 is an integer literal or 0-d tensor constant -> x (timm's
    MobileOne adds a Python 0 for an absent branch; prepare_pt2e lifts it to an int64
    constant). A quantizer that annotates both add inputs would otherwise observe an integer
    tensor, which no observer can (torch.histc has no Long kernel)."""
    import torch

    aten = torch.ops.aten
    if node.target not in (aten.add.Tensor, aten.sub.Tensor) or len(node.args) != 2 \
            or node.kwargs.get("alpha", 1) != 1:
        return None
    for slot in (0, 1) if node.target == aten.add.Tensor else (1,):
        const, other = node.args[slot], node.args[1 - slot]
        if not hasattr(other, "meta"):
            continue
        value: Any
        if isinstance(const, int) and not isinstance(const, bool):  # a literal `+ 0`
            value = torch.tensor(const)
        elif getattr(const, "op", None) == "get_attr":
            value = getattr(graph_module, str(const.target), None)
        else:
            continue
        # A 0-d integer zero leaves any float or integer tensor as it is (a 0-d operand never
        # changes the other's shape or, within a dtype category, its dtype).
        kept = other.meta.get("val")
        if not isinstance(value, torch.Tensor) or value.dim() != 0 or bool(value.any()) \
                or value.dtype.is_floating_point or value.dtype == torch.bool \
                or (kept is not None and kept.dtype == torch.bool):
            continue
        return other
    return None


def _empty_pad(graph_module: Any, node: Any) -> Any:
    """A constant pad of width 0 on every side -> its input (timm's EfficientViT-M pads each
    attention window up to a multiple of the window size: 0 at the exported resolution).
    XNNPACK cannot build an int8 StaticConstantPad of nothing (ExecuTorch's method init fails
    with xnn_status_invalid_parameter)."""
    import torch

    aten = torch.ops.aten
    if node.target not in (aten.pad.default, aten.constant_pad_nd.default):
        return None
    widths = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
    if mode != "constant" or not isinstance(widths, (list, tuple)) \
            or not all(isinstance(w, int) and w == 0 for w in widths):
        return None
    return node.args[0]


_IDENTITY_MATCHERS: tuple[Callable[[Any, Any], Any], ...] = (_zero_constant_add, _empty_pad)


def zero_fill_valued_pads(graph_module: Any) -> int:
    """A constant pad of a value c ≠ 0 -> a pad of 0 plus a constant holding c where the pad
    was (exact in float). An int8 pad fills with its input's zero point, so it can only write c
    if c lies inside its input's range, and the TFLite converter runs every pad on its input's
    int8 scale (PADV2), even one PT2E left float: timm's EfficientViT (MIT) pads v with ones
    for the linear attention's denominator, v's range tops out near 0.23, the ones saturated to
    0.23 and the int8 .tflite fell to cosine 0.977 while the PT2E simulation said 0.9998.
    A pad of 0 is exact on any int8 scale; the add's output gets its own range with c in it.
    Returns how many pads were rewritten."""
    import torch

    aten = torch.ops.aten
    rewritten = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" \
                or node.target not in (aten.pad.default, aten.constant_pad_nd.default):
            continue
        is_pad = node.target == aten.pad.default
        args = list(node.args)
        mode = (args[2] if len(args) > 2 else node.kwargs.get("mode", "constant")) \
            if is_pad else "constant"
        value_at = 3 if is_pad else 2
        value = args[value_at] if len(args) > value_at else node.kwargs.get("value")
        x, widths = args[0], (args[1] if len(args) > 1 else node.kwargs.get("pad"))
        out, seen = node.meta.get("val"), getattr(x, "meta", {}).get("val")
        if mode != "constant" or not value or not isinstance(widths, (list, tuple)) \
                or not all(isinstance(w, int) for w in widths) or out is None \
                or seen is None or not out.dtype.is_floating_point:
            continue
        fill = torch.nn.functional.pad(torch.zeros(tuple(seen.shape), dtype=out.dtype),
                                       list(widths), value=float(value))
        name = f"_edgekit_pad_fill_{rewritten}"
        while hasattr(graph_module, name):
            name += "_"
        graph_module.register_buffer(name, fill)
        with graph_module.graph.inserting_before(node):
            zero_pad = graph_module.graph.call_function(aten.constant_pad_nd.default,
                                                        (x, list(widths), 0.0))
            constant = graph_module.graph.get_attr(name)
            filled = graph_module.graph.call_function(aten.add.Tensor, (zero_pad, constant))
        for made in (zero_pad, filled):
            made.meta = {k: v for k, v in node.meta.items() if k != "source_fn_stack"}
        constant.meta["val"] = fill
        node.replace_all_uses_with(filled)
        graph_module.graph.erase_node(node)
        rewritten += 1
    if rewritten:
        graph_module.recompile()
    return rewritten


def quantize_pt2e(model: Any, example: Any, calib: CalibrationSet, holdout: np.ndarray,
                  config: QuantConfig, make_quantizer: Callable[[str], Any], target: str,
                  on_step: Callable[[str], None] = lambda s: None, fold_quantize: bool = True,
                  method: str = "mse",
                  prepare_graph: Callable[[Any], object] = lambda gm: None,
                  float_kinds: tuple[str, ...] = (), observer_eps: float = OBSERVER_EPS
                  ) -> Pt2eResult:
    """Calibrate `model` with the target's quantizer; returns the converted module.
    `prepare_graph` may annotate the exported graph for the quantizer before prepare_pt2e;
    sites of `float_kinds` (and the user's `--keep-float` kinds) stay float."""
    import torch
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    quantizer = make_quantizer(method)
    kinds = set(config.kept_kinds) | set(float_kinds)
    speed_kinds = set(float_kinds) - set(config.kept_kinds)
    batch = int(example.shape[0])
    with torch.no_grad():
        graph = torch.export.export(copy.deepcopy(model), (example,), strict=False).module()
        rewrites = {"identity_ops_dropped": drop_identity_ops(graph),
                    "valued_pads_zero_filled": zero_fill_valued_pads(graph)}
        prepare_graph(graph)
        prepared = move_exported_model_to_eval(prepare_pt2e(graph, quantizer))
        on_step(f"calibrating on {len(calib)} samples ({method})")
        for i in range(0, len(calib.samples) - batch + 1, batch):
            prepared(torch.from_numpy(calib.samples[i:i + batch]))
        hold = [torch.from_numpy(holdout[i:i + batch])
                for i in range(0, len(holdout) - batch + 1, batch)]
        reference = [_first(model(x)).numpy() for x in hold]
    # `--keep-float OPS`: those sites read and write float (observers removed after
    # calibration, so shared-range annotations of their neighbours stay consistent).
    findings, non_finite = sanitize_observers(prepared, eps=observer_eps)
    reasons = {}
    for n in prepared.graph.nodes:
        kind = node_kind(n)
        if kind in kinds:
            reasons[n.name] = (f"speed ({kind}): kept float by --int8-plan fast"
                               if kind in speed_kinds else f"--keep-float {kind}")
    bad = {f.tensor for f in findings if f.kind == "non-finite"}
    for n in prepared.graph.nodes:
        if n.name in non_finite:
            touched = sorted(bad & ({n.name} | {a.name for a in n.all_input_nodes}
                                    | {a.args[0].name for a in n.all_input_nodes
                                       if _is_observer(prepared, a)}))
            reasons.setdefault(n.name, "non-finite calibration values (NaN/Inf) in "
                               + ", ".join(touched or sorted(bad)))
    forced = set(reasons)
    sites = [s for s in _sites(prepared) if s not in forced]
    result = Pt2eResult(module=None, sites=len(sites) + len(forced), findings=findings,
                        rewrites={k: v for k, v in rewrites.items() if v})

    def converted(float_names: set[str]) -> Any:
        float_names = float_names | forced
        gm = _float_sites(prepared, float_names) if float_names else copy.deepcopy(prepared)
        return move_exported_model_to_eval(convert_pt2e(gm, fold_quantize=fold_quantize))

    full = converted(set())
    result.cosine_all_int8 = _mean_cosine(full, hold, reference) if hold else None
    result.cosine_final = result.cosine_all_int8
    result.module = full
    result.float_sites = sorted(forced)
    result.float_reasons = dict(reasons)
    if config.keep_float != "auto" or result.cosine_all_int8 is None \
            or result.cosine_all_int8 >= config.min_cosine:
        return result
    on_step(f"sensitivity analysis over {len(sites)} sites "
            f"(all-int8 cosine {result.cosine_all_int8:.4f} < {config.min_cosine})")
    candidates: dict[tuple[str, ...], Any] = {}

    def cosine_with(names: list[str]) -> float:
        candidates.clear()  # keep only the latest model: a converted copy per site is memory
        module = candidates[tuple(names)] = converted(set(names))
        return _mean_cosine(module, hold, reference)

    def accept(names: list[str], cos: float) -> None:
        result.module, result.cosine_final = candidates[tuple(names)], cos

    simulate = _simulator(prepared)
    choice = choose_float_sites(
        sites, _neighbourhoods(prepared, sites), cosine_with, result.cosine_all_int8,
        config.min_cosine, on_chosen=accept,
        rank_with=lambda names: _mean_cosine(simulate(set(names) | forced), hold, reference))
    result.sensitivity = choice.sensitivity
    result.float_sites = sorted(set(choice.chosen) | forced)
    result.float_reasons = {**reasons, **choice.reasons}
    return result


def _first(out: Any) -> Any:
    return out[0] if isinstance(out, (tuple, list)) else out
