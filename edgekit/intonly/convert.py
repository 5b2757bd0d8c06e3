"""fp32 deploy graph (after reparameterization) → IntGraph, by post-training calibration.

torch.export gives the aten graph; one pass over calibration images records every tensor's
range; then each aten op is translated by its entry in TRANSLATORS (a registry, not an
if-chain). Scales are symmetric per tensor (activations) and per output channel (weights):
s = absmax / 127 (or the `percentile`-th |x|). Multiplying by a positive scalar (attention's
q·scale) is free: only the scale changes.

Supported ops cover LeViT (conv, linear, hardswish, attention, subsample), EfficientFormer
(relu, GELU, LayerNorm, the count_include_pad=False pool mixer, sub) and the MobileViT hybrid
(SiLU, unbind/cat, unfold/fold reshapes, global pooling); a graph with any other op is refused
naming it. timm attention modules are switched to explicit matmul/softmax (`fused_attn`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.errors import ExportError
from edgekit.intonly import graph as ig
from edgekit.quant.ranges import ZERO_ABS, module_path
from edgekit.registry import Registry


@dataclass(frozen=True)
class QT:
    """An integer tensor in the graph being built: its IR name and real scale."""
    name: str
    scale: float
    unsigned: bool = False  # Shiftmax probabilities (uint8)


@dataclass
class Ctx:
    ops: list[ig.IntOp] = field(default_factory=list)
    ranges: dict[str, float] = field(default_factory=dict)  # node name -> calibrated |x| bound
    env: dict[str, Any] = field(default_factory=dict)  # node name -> QT | tensor | tuple
    gm: Any = None

    def scale(self, node: Any) -> float:
        """absmax / 127 of the node's calibrated range. An all-zero tensor (a pruned branch, a
        zero bias added) is exact at any scale: it takes its first integer input's, so the
        requantization ratios around it stay in the dyadic range."""
        bound = self.ranges.get(node.name, 0.0)
        if bound > ZERO_ABS:
            return bound / 127.0
        for arg in node.all_input_nodes:
            q = self.env.get(arg.name)
            if isinstance(q, QT):
                return q.scale
        return 1.0 / 127.0

    def add(self, op: ig.IntOp) -> None:
        self.ops.append(op)


Translator = Callable[[Ctx, Any], Any]
TRANSLATORS: Registry[Translator] = Registry("integer-only translation")


def _ratio(x: float) -> tuple[int, int]:
    m, c = ig.channel_dyadic(np.array([x]))
    return int(m[0]), c


def _weight_int(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8: (w_int, s_w). An all-zero channel (pruned) is exact
    at any scale: it takes the largest channel's (1/127 if all are zero), which keeps the
    requantization ratios of the layer in one dyadic range."""
    flat = np.abs(w.reshape(w.shape[0], -1)).max(1)
    live = flat > ZERO_ABS
    s_w = np.where(live, flat, flat.max() if live.any() else 1.0) / 127.0
    shape = (-1,) + (1,) * (w.ndim - 1)
    return np.clip(np.round(w / s_w.reshape(shape)), -127, 127).astype(np.int8), s_w


def _np(t: Any) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def _args(ctx: Ctx, node: Any) -> list[Any]:
    def value(a: Any) -> Any:
        if isinstance(a, (list, tuple)) and not isinstance(a, QT):
            return [value(x) for x in a] if any(hasattr(x, "name") for x in a) else a
        return ctx.env[a.name] if hasattr(a, "name") and a.name in ctx.env else a

    return [value(a) for a in node.args]


def _register(*names: str) -> Callable[[Translator], Translator]:
    def deco(fn: Translator) -> Translator:
        for n in names:
            TRANSLATORS.register(n, fn)
        return fn
    return deco


@_register("conv2d")
def _conv2d(ctx: Ctx, node: Any) -> QT:
    args = _args(ctx, node)
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else None

    def pair(i: int, default: int) -> tuple[int, int]:
        v = args[i] if len(args) > i else default
        return (int(v[0]), int(v[-1])) if isinstance(v, (list, tuple)) else (int(v), int(v))

    stride, padding, dilation = pair(3, 1), pair(4, 0), pair(5, 1)
    groups = int(args[6]) if len(args) > 6 else 1
    if dilation != (1, 1):
        raise ExportError(f"integer-only conv2d: dilation {dilation} is not supported")
    w_int, s_w = _weight_int(_np(w))
    out = ctx.scale(node)
    bias = _np(b) if b is not None else np.zeros(w_int.shape[0])
    mult, shift = ig.channel_dyadic(x.scale * s_w / out)
    ctx.add(ig.Conv2d(x.name, node.name, w_int,
                      np.round(bias / (x.scale * s_w)).astype(np.int64),
                      mult, shift, stride, padding, groups))
    return QT(node.name, out)


@_register("linear")
def _linear(ctx: Ctx, node: Any) -> QT:
    x, w, b = (_args(ctx, node) + [None])[:3]
    w_int, s_w = _weight_int(_np(w))
    out = ctx.scale(node)
    bias = _np(b) if b is not None else np.zeros(w_int.shape[0])
    mult, shift = ig.channel_dyadic(x.scale * s_w / out)
    ctx.add(ig.Linear(x.name, node.name, w_int,
                      np.round(bias / (x.scale * s_w)).astype(np.int64), mult, shift))
    return QT(node.name, out)


@_register("hardswish", "hardswish_")
def _hardswish(ctx: Ctx, node: Any) -> QT:
    (x,) = _args(ctx, node)[:1]
    out = ctx.scale(node)
    mult, shift = _ratio(x.scale * x.scale / (6.0 * out))
    ctx.add(ig.Hardswish(x.name, node.name, int(round(3.0 / x.scale)),
                         int(round(6.0 / x.scale)), mult, shift))
    return QT(node.name, out)


@_register("add", "add_")
def _add(ctx: Ctx, node: Any) -> QT:
    a, b = _args(ctx, node)[:2]
    out = ctx.scale(node)
    if isinstance(a, QT) and isinstance(b, QT):
        mults, shift = ig.channel_dyadic(np.array([a.scale / out, b.scale / out]))
        ctx.add(ig.Add(a.name, b.name, node.name, int(mults[0]), int(mults[1]), shift))
        return QT(node.name, out)
    q, const = (a, b) if isinstance(a, QT) else (b, a)
    mult, shift = _ratio(q.scale / out)
    k = np.round(_np(const) * 2.0**shift / out).astype(np.int64)
    ctx.add(ig.AddConst(q.name, node.name, k, mult, shift))
    return QT(node.name, out)


@_register("sub", "sub_")
def _sub(ctx: Ctx, node: Any) -> QT:
    a, b = _args(ctx, node)[:2]
    if not (isinstance(a, QT) and isinstance(b, QT)):
        raise ExportError(f"integer-only sub needs two tensors (node {node.name})")
    out = ctx.scale(node)
    mults, shift = ig.channel_dyadic(np.array([a.scale / out, b.scale / out]))
    ctx.add(ig.Add(a.name, b.name, node.name, int(mults[0]), -int(mults[1]), shift))
    return QT(node.name, out)


@_register("relu", "relu_")
def _relu(ctx: Ctx, node: Any) -> QT:
    x = _args(ctx, node)[0]
    ctx.add(ig.Relu(x.name, node.name))
    return QT(node.name, x.scale)


def _sigmoid_gate(ctx: Ctx, node: Any, alpha: float) -> QT:
    x = _args(ctx, node)[0]
    out = ctx.scale(node)
    mult, shift = _ratio(x.scale * 2.0**-7 / out)  # shift_gelu's output scale: s · 2^-7
    ctx.add(ig.ShiftGelu(x.name, node.name, x.scale, mult, shift, alpha=alpha))
    return QT(node.name, out)


@_register("gelu")
def _gelu(ctx: Ctx, node: Any) -> QT:
    return _sigmoid_gate(ctx, node, ig.ref.GELU_ALPHA)


@_register("silu", "silu_")
def _silu(ctx: Ctx, node: Any) -> QT:
    """SiLU (MobileViT, EfficientFormerV2's stem) = x·σ(x): ShiftGELU's gate with α = 1."""
    return _sigmoid_gate(ctx, node, 1.0)


@_register("layer_norm")
def _layer_norm(ctx: Ctx, node: Any) -> QT:
    args = _args(ctx, node)
    x, shape = args[0], args[1]
    if len(shape) != 1:
        raise ExportError("integer-only layer_norm: only the last axis")
    c = int(shape[0])
    gamma = _np(args[2]) if len(args) > 2 and args[2] is not None else np.ones(c)
    beta = _np(args[3]) if len(args) > 3 and args[3] is not None else np.zeros(c)
    out = ctx.scale(node)
    core = np.sqrt(c) / 2**30  # i_layernorm_core's output scale
    ratios = np.abs(gamma) * core / out
    mult, shift = ig.channel_dyadic(np.maximum(ratios, ratios.max() * 1e-9), bits=24)
    mult = np.where(gamma == 0, 0, mult * np.sign(gamma)).astype(np.int64)
    beta_int = np.round(beta / out * 2.0**shift).astype(np.int64)
    ctx.add(ig.LayerNorm(x.name, node.name, mult, beta_int, shift))
    return QT(node.name, out)


@_register("avg_pool2d")
def _avg_pool2d(ctx: Ctx, node: Any) -> QT:
    args = list(node.args) + [None] * 7
    x = ctx.env[node.args[0].name]
    k = args[1][0] if isinstance(args[1], (list, tuple)) else args[1]
    stride = args[2] if args[2] not in (None, []) else k
    stride = stride[0] if isinstance(stride, (list, tuple)) else stride
    pad = args[3] if args[3] is not None else 0
    pad = pad[0] if isinstance(pad, (list, tuple)) else pad
    ceil_mode, include_pad = bool(args[4]), args[5] if args[5] is not None else True
    if ceil_mode or args[6] is not None:
        raise ExportError("integer-only avg_pool2d: ceil_mode/divisor_override unsupported")
    _, ch, h, w = (int(v) for v in node.args[0].meta["val"].shape)
    oh, ow = (int(v) for v in node.meta["val"].shape[2:])
    count = np.zeros((oh, ow))
    for i in range(oh):
        for j in range(ow):
            rows = range(i * stride - pad, i * stride - pad + k)
            cols = range(j * stride - pad, j * stride - pad + k)
            count[i, j] = (k * k if include_pad else
                           sum(1 for r in rows if 0 <= r < h) * sum(1 for c in cols if 0 <= c < w))
    out = ctx.scale(node)
    mult, shift = ig.channel_dyadic((x.scale / (out * count)).reshape(-1))
    ctx.add(ig.AvgPool(x.name, node.name, int(k), int(stride), int(pad), ch,
                       mult.reshape(oh, ow), shift))
    return QT(node.name, out)


@_register("div", "div_")
def _div(ctx: Ctx, node: Any) -> QT:
    a, b = _args(ctx, node)[:2]
    value = float(b) if not hasattr(b, "numel") else float(b.item())
    if not isinstance(a, QT) or value <= 0:
        raise ExportError(f"integer-only: only division by a positive scalar (node {node.name})")
    return QT(a.name, a.scale / value, a.unsigned)


@_register("mul", "mul_")
def _mul(ctx: Ctx, node: Any) -> QT:
    a, b = _args(ctx, node)[:2]
    q, other = (a, b) if isinstance(a, QT) else (b, a)
    value = float(other) if not hasattr(other, "numel") else (
        float(other.item()) if other.numel() == 1 else None)
    if not isinstance(q, QT):
        raise ExportError(f"integer-only mul needs one integer tensor (node {node.name})")
    if value is not None and value > 0:
        return QT(q.name, q.scale * value, q.unsigned)  # free: only the scale changes
    if isinstance(other, QT):
        raise ExportError(f"integer-only: tensor × tensor mul is not supported ({node.name})")
    gamma = _np(other) if hasattr(other, "numel") else np.array(float(other))
    out = ctx.scale(node)
    ratios = np.abs(gamma) * q.scale / out
    if not np.any(gamma):  # a branch scaled to zero (LayerScale 0): the product is exactly 0
        m, shift = np.zeros(gamma.size, np.int64), 0
    else:
        m, shift = ig.channel_dyadic(np.maximum(ratios, ratios.max() * 1e-9).reshape(-1))
    mult = np.where(gamma.reshape(-1) == 0, 0, m * np.sign(gamma.reshape(-1)))
    ctx.add(ig.MulConst(q.name, node.name, mult.reshape(gamma.shape).astype(np.int64), shift))
    return QT(node.name, out)


@_register("matmul", "bmm")
def _matmul(ctx: Ctx, node: Any) -> QT:
    a, b = _args(ctx, node)[:2]
    out = ctx.scale(node)
    mult, shift = _ratio(a.scale * b.scale / out)
    ctx.add(ig.MatMul(a.name, b.name, node.name, mult, shift))
    return QT(node.name, out)


@_register("softmax", "_softmax")
def _softmax(ctx: Ctx, node: Any) -> QT:
    x, dim = _args(ctx, node)[:2]
    if dim not in (-1, len(node.args[0].meta["val"].shape) - 1):
        raise ExportError("integer-only softmax must run over the last axis")
    # shift-exp needs an input scale ≥ 2^-15. A finer one means |x| < 127·2^-15 < 0.004:
    # reading the same integers at 2^-15 keeps every input inside ±0.004, so the
    # probabilities move by < 0.8 % of 1/N, far below the output's 2^-8 rounding.
    scale, n = shiftmax_precision(max(x.scale, 2.0**-15), int(node.args[0].meta["val"].shape[-1]))
    ctx.add(ig.Shiftmax(x.name, node.name, scale, n))
    return QT(node.name, 2.0**-7, unsigned=True)


def shiftmax_precision(scale: float, length: int, n: int = 15) -> tuple[float, int]:
    """(input scale, exp bits n) for which a row's Σ exp fits int32. exp(0) is −x0·2^n, so a
    row of `length` equal scores sums to length·(−x0)·2^n; past 2^31 − 1 the sum saturates
    and the probabilities no longer sum to 1 (at scale 2^-15, n = 15 a uniform 64-token row
    summed to 32, not 1). n is lowered first (exp keeps ≥ 2^14 levels for x = 0), the scale
    only if n = 0 is not enough."""
    while length * -ig.ref.shift_exp_x0(scale) << n > ig.ref.INT32_MAX:
        if n > 0:
            n -= 1
        else:
            scale *= 2.0
    return scale, n


def _layout(ctx: Ctx, node: Any, **kw: Any) -> QT:
    x = _args(ctx, node)[0]
    ctx.add(ig.Layout(x.name, node.name, **kw))
    return QT(node.name, x.scale, x.unsigned)


@_register("view", "reshape", "_unsafe_view", "flatten", "unsqueeze", "squeeze")
def _reshape(ctx: Ctx, node: Any) -> QT:
    return _layout(ctx, node, shape=tuple(int(s) for s in node.meta["val"].shape))


@_register("permute")
def _permute(ctx: Ctx, node: Any) -> QT:
    return _layout(ctx, node, perm=tuple(int(d) for d in node.args[1]))


@_register("transpose")
def _transpose(ctx: Ctx, node: Any) -> QT:
    rank = len(node.args[0].meta["val"].shape)
    d0, d1 = (int(d) % rank for d in node.args[1:3])
    perm = list(range(rank))
    perm[d0], perm[d1] = perm[d1], perm[d0]
    return _layout(ctx, node, perm=tuple(perm))


@_register("contiguous", "clone", "alias", "detach", "dropout")
def _identity(ctx: Ctx, node: Any) -> QT:
    return _args(ctx, node)[0]  # type: ignore[no-any-return]


@_register("split_with_sizes", "split")
def _split(ctx: Ctx, node: Any) -> tuple[QT, ...]:
    x = _args(ctx, node)[0]
    sizes, dim = node.args[1], (node.args[2] if len(node.args) > 2 else 0)
    rank = len(node.args[0].meta["val"].shape)
    dim = int(dim) % rank
    total = int(node.args[0].meta["val"].shape[dim])
    if isinstance(sizes, int):
        sizes = [sizes] * (total // sizes)
    parts, start = [], 0
    for i, size in enumerate(sizes):
        name = f"{node.name}_{i}"
        ctx.add(ig.Slice(x.name, name, dim, start, start + int(size)))
        parts.append(QT(name, x.scale, x.unsigned))
        start += int(size)
    return tuple(parts)


@_register("getitem")
def _getitem(ctx: Ctx, node: Any) -> Any:
    seq, index = _args(ctx, node)[:2]
    return seq[index]


@_register("slice")
def _slice(ctx: Ctx, node: Any) -> QT:
    x = _args(ctx, node)[0]
    rank = len(node.args[0].meta["val"].shape)
    dim, start, end, step = (list(node.args[1:]) + [0, 0, None, 1])[:4] if len(node.args) > 1 \
        else (0, 0, None, 1)
    size = int(node.args[0].meta["val"].shape[int(dim) % rank])
    end = size if end is None or end > size else int(end)
    ctx.add(ig.Slice(x.name, node.name, int(dim) % rank, int(start or 0), end, int(step or 1)))
    return QT(node.name, x.scale, x.unsigned)


@_register("mean")
def _mean(ctx: Ctx, node: Any) -> QT:
    x = _args(ctx, node)[0]
    shape = node.args[0].meta["val"].shape
    dims = node.args[1] if len(node.args) > 1 else list(range(len(shape)))
    keep = bool(node.args[2]) if len(node.args) > 2 else bool(node.kwargs.get("keepdim", False))
    axes = tuple(int(d) % len(shape) for d in dims)
    count = int(np.prod([int(shape[a]) for a in axes]))
    out = ctx.scale(node)
    mult, shift = _ratio(x.scale / (out * count))
    ctx.add(ig.Mean(x.name, node.name, axes, keep, mult, shift))
    return QT(node.name, out)


@_register("adaptive_avg_pool2d")
def _adaptive_avg_pool2d(ctx: Ctx, node: Any) -> QT:
    """Global average pooling (output 1×1) only: the Mean over H, W."""
    x, size = _args(ctx, node)[:2]
    if tuple(int(s) for s in size) != (1, 1):
        raise ExportError(f"integer-only adaptive_avg_pool2d supports output 1×1, not {size}")
    shape = node.args[0].meta["val"].shape
    count = int(shape[-1]) * int(shape[-2])
    out = ctx.scale(node)
    mult, shift = _ratio(x.scale / (out * count))
    ctx.add(ig.Mean(x.name, node.name, (2, 3), True, mult, shift))
    return QT(node.name, out)


@_register("cat", "concat")
def _cat(ctx: Ctx, node: Any) -> QT:
    tensors = _args(ctx, node)[0]
    dim = int(node.args[1]) if len(node.args) > 1 else int(node.kwargs.get("dim", 0))
    if not all(isinstance(t, QT) for t in tensors):
        raise ExportError(f"integer-only cat needs tensors only (node {node.name})")
    out = ctx.scale(node)
    mults, shift = ig.channel_dyadic(np.array([t.scale / out for t in tensors]))
    rank = len(node.meta["val"].shape)
    ctx.add(ig.Concat(tuple(t.name for t in tensors), node.name, dim % rank,
                      tuple(int(m) for m in mults), shift))
    return QT(node.name, out)


@_register("unbind")
def _unbind(ctx: Ctx, node: Any) -> tuple[QT, ...]:
    """x.unbind(dim) (timm's q, k, v = qkv.unbind(0)): a slice per index, dim squeezed."""
    x = _args(ctx, node)[0]
    dim = int(node.args[1]) if len(node.args) > 1 else int(node.kwargs.get("dim", 0))
    shape = [int(s) for s in node.args[0].meta["val"].shape]
    dim %= len(shape)
    squeezed = tuple(s for i, s in enumerate(shape) if i != dim)
    parts = []
    for i in range(shape[dim]):
        ctx.add(ig.Slice(x.name, f"{node.name}_{i}_slice", dim, i, i + 1))
        ctx.add(ig.Layout(f"{node.name}_{i}_slice", f"{node.name}_{i}", shape=squeezed))
        parts.append(QT(f"{node.name}_{i}", x.scale, x.unsigned))
    return tuple(parts)


def _fold_constant(ctx: Ctx, node: Any) -> Any:
    """An op over constants only (a reshaped bias, a transposed weight): evaluate it now."""
    import torch

    with torch.no_grad():
        return node.target(*_args(ctx, node), **node.kwargs)


def _op(node: Any) -> str:
    from edgekit.support import op_name

    if node.target is operator.getitem:
        return "getitem"
    return op_name(node.target)


def calibrate_ranges(gm: Any, calib: np.ndarray, percentile: float | None = None
                     ) -> dict[str, float]:
    """|x| bound of every node's tensor output(s) over the calibration samples."""
    import torch
    from torch.fx import Interpreter

    seen: dict[str, list[np.ndarray]] = {}
    non_finite: set[str] = set()

    class Recorder(Interpreter):  # type: ignore[misc]
        def run_node(self, n: Any) -> Any:
            out = super().run_node(n)
            items = out if isinstance(out, (tuple, list)) else (out,)
            for i, t in enumerate(items):
                if isinstance(t, torch.Tensor) and t.is_floating_point():
                    key = n.name if len(items) == 1 else f"{n.name}_{i}"
                    a = t.detach().abs().flatten().numpy()
                    if not np.isfinite(a).all():
                        non_finite.add(key)
                    seen.setdefault(key, []).append(
                        np.array([a.max()]) if percentile is None else
                        np.array([np.percentile(a, percentile)]))
            return out

    with torch.no_grad():
        for i in range(len(calib)):
            Recorder(gm).run(torch.from_numpy(calib[i:i + 1]))
    ranges = {k: float(np.max(v)) for k, v in seen.items()}
    bad = sorted(non_finite)
    if bad:
        nodes = {n.name: n for n in gm.graph.nodes}
        where = [f"{k} ({module_path(nodes[k]) if k in nodes else '?'})" for k in bad[:5]]
        raise ExportError("integer-only: the model itself produces NaN/Inf on the calibration "
                          "data at " + ", ".join(where) + " (the data is finite)",
                          hint="an integer-only graph has no float fallback: fix the model "
                               "(or its weights) there, or use --quant int8, which keeps such "
                               "tensors float")
    return ranges


def convert(model: Any, example: Any, calib: np.ndarray, percentile: float | None = None
            ) -> ig.IntGraph:
    """Calibrate and translate an eval-mode fp32 model (batch 1) to an IntGraph."""
    import torch

    for module in model.modules():  # timm attention: explicit matmul/softmax, not SDPA
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    with torch.no_grad():
        gm = torch.export.export(model, (example,), strict=False).module()
    ctx = Ctx(ranges=calibrate_ranges(gm, calib, percentile), gm=gm)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ExportError("integer-only conversion needs a model with one image input")
    inp = placeholders[0]
    out_node = next(n for n in gm.graph.nodes if n.op == "output")
    s_in = ctx.scale(inp)
    ctx.add(ig.Quantize("input", inp.name, s_in))
    ctx.env[inp.name] = QT(inp.name, s_in)
    unsupported = sorted({_op(n) for n in gm.graph.nodes if n.op == "call_function"
                          and _op(n) not in TRANSLATORS})
    if unsupported:
        raise ExportError("integer-only: no integer translation for " + ", ".join(unsupported),
                          hint="supported: " + ", ".join(TRANSLATORS.list()))
    for node in gm.graph.nodes:
        if node.op == "get_attr":
            obj = gm
            for part in node.target.split("."):
                obj = getattr(obj, part)
            ctx.env[node.name] = obj
        elif node.op == "call_function":
            args = _args(ctx, node)
            flat = [x for a in args for x in (a if isinstance(a, list) else [a])]
            if not any(isinstance(a, (QT, tuple)) for a in flat):
                ctx.env[node.name] = _fold_constant(ctx, node)  # weights reshaped etc.
            else:
                ctx.env[node.name] = TRANSLATORS.get(_op(node))(ctx, node)
    result = out_node.args[0]
    result = result[0] if isinstance(result, (tuple, list)) else result
    final = ctx.env[result.name]
    ctx.add(ig.Dequantize(final.name, "logits", final.scale))
    in_shape = tuple(int(s) for s in example.shape)
    out_shape = tuple(int(s) for s in result.meta["val"].shape)
    return ig.IntGraph("input", "logits", in_shape, out_shape, ctx.ops)
