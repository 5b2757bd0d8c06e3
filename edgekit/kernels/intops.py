"""The integer-only IR's ops on the C kernels: `run(op, env)` computes what `op.reference(env)`
does, through the kernel, or returns None when no kernel covers the op or its parameters (the
caller then runs the reference). `shape_line(op, env)` is the op's kernel shape for ek_bench.

`graph.run_reference(..., kernels=True)` uses this as its fast path; tests check both agree bit
for bit on whole models.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from edgekit import kernels as ek
from edgekit.intonly import graph as ig

Env = dict[str, np.ndarray]


def _fits32(*values: Any) -> bool:
    """Whether every value fits the kernels' int32 parameters (else the reference runs)."""
    arrays = [np.asarray(v, dtype=np.int64) for v in values]
    return all(ek.INT32[0] <= a.min(initial=0) and a.max(initial=0) <= ek.INT32[1]
               for a in arrays)


def _is_dw3x3(op: ig.Conv2d) -> bool:
    cout, cpg, kh, kw = op.weight.shape
    return (op.groups == cout and cpg == 1 and (kh, kw) == (3, 3) and op.stride[0] == op.stride[1]
            and op.stride[0] in (1, 2) and op.padding[0] == op.padding[1]
            and op.padding[0] in (0, 1))


def _linear(op: ig.Linear, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.bias, op.mult) or env[op.input].shape[-1] != op.weight.shape[1]:
        return None
    return ek.s8_gemm_requant(env[op.input], op.weight, op.bias, op.mult, op.shift, op.relu,
                              path=path)


def _conv(op: ig.Conv2d, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.bias, op.mult) or np.asarray(op.mult).min(initial=0) < 0:
        return None
    x = env[op.input]
    if _is_dw3x3(op):
        return np.stack([ek.s8_dwconv3x3_requant(img, op.weight, op.bias, op.mult, op.shift,
                                                 op.stride[0], op.padding[0], op.relu,
                                                 path=path) for img in x])
    taps = int(np.prod(op.weight.shape[1:]))
    if taps * 2**14 + np.abs(op.bias).max(initial=0) >= 2**31:
        return None
    return np.stack([ek.s8_conv2d_requant(img, op.weight, op.bias, op.mult, op.shift,
                                          op.stride, op.padding, op.groups, op.relu, path=path)
                     for img in x])


def _matmul(op: ig.MatMul, env: Env, path: str | None) -> np.ndarray | None:
    a, b = env[op.a], env[op.b]
    if a.ndim < 2 or a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2] or \
            a.shape[-1] >= 2**16 or not 0 <= op.mult <= ek.INT32[1] or a.min(initial=0) < -128 \
            or (a.min(initial=0) < 0 and a.max(initial=0) > 127):
        return None
    lead = a.shape[:-2]
    a3, b3 = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    y = np.stack([ek.s8_matmul_requant(x, w, op.mult, op.shift, path=path)
                  for x, w in zip(a3, b3, strict=True)])
    return y.reshape(*lead, *y.shape[-2:])


def _mean(op: ig.Mean, env: Env, path: str | None) -> np.ndarray | None:
    x = env[op.input]
    axes = sorted(a % x.ndim for a in op.axes)
    if axes != list(range(axes[0], axes[-1] + 1)) or not 0 <= op.mult <= ek.INT32[1]:
        return None
    return ek.s8_mean_requant(x, tuple(axes), op.mult, op.shift, op.keepdims, path=path)


def _shiftmax(op: ig.Shiftmax, env: Env, path: str | None) -> np.ndarray | None:
    if op.out_bits > 8:
        return None
    return ek.s8_shiftmax(env[op.input], op.scale, op.n, op.out_bits, path=path)


def _shiftgelu(op: ig.ShiftGelu, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.mult):
        return None
    return ek.s8_shiftgelu(env[op.input], op.scale, op.mult, op.shift, op.n, op.sig_bits,
                           op.alpha, path=path)


def _layernorm(op: ig.LayerNorm, env: Env, path: str | None) -> np.ndarray | None:
    if np.abs(op.gamma_mult).max(initial=0) >= 2**24:
        return None
    return ek.s8_ilayernorm(env[op.input], op.gamma_mult, op.beta, op.shift, path=path)


def _avgpool(op: ig.AvgPool, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.mult):
        return None
    return np.stack([ek.s8_avgpool_requant(img, op.kernel, op.stride, op.padding, op.mult,
                                           op.shift, path=path) for img in env[op.input]])


def _add(op: ig.Add, env: Env, path: str | None) -> np.ndarray | None:
    a, b = env[op.a], env[op.b]
    if a.shape != b.shape or not _fits32(op.mult_a, op.mult_b):
        return None
    return ek.s8_add_requant(a, b, op.mult_a, op.mult_b, op.shift, path=path)


def _hardswish(op: ig.Hardswish, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.r3, op.r6, op.mult):
        return None
    return ek.s8_hardswish(env[op.input], op.r3, op.r6, op.mult, op.shift, path=path)


def _addconst(op: ig.AddConst, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.mult) or np.abs(op.const).max(initial=0) >= 2**61:
        return None
    return ek.s8_addconst_requant(env[op.input], op.mult, op.const, op.shift, path=path)


def _mulconst(op: ig.MulConst, env: Env, path: str | None) -> np.ndarray | None:
    if not _fits32(op.mult):
        return None
    return ek.s8_mulconst_requant(env[op.input], op.mult, op.shift, path=path)


RUNNERS: dict[type, tuple[str, Callable[[Any, Env, str | None], np.ndarray | None]]] = {
    ig.Linear: ("s8_gemm_requant", _linear),
    ig.Conv2d: ("s8_conv2d_requant", _conv),  # depthwise 3×3: s8_dwconv3x3_requant
    ig.MatMul: ("s8_matmul_requant", _matmul),
    ig.Mean: ("s8_mean_requant", _mean),
    ig.Shiftmax: ("s8_shiftmax", _shiftmax),
    ig.ShiftGelu: ("s8_shiftgelu", _shiftgelu),
    ig.LayerNorm: ("s8_ilayernorm", _layernorm),
    ig.AvgPool: ("s8_avgpool_requant", _avgpool),
    ig.Add: ("s8_add_requant", _add),
    ig.Hardswish: ("s8_hardswish", _hardswish),
    ig.AddConst: ("s8_addconst_requant", _addconst),
    ig.MulConst: ("s8_mulconst_requant", _mulconst),
}


def kernel_op(op: ig.IntOp) -> str | None:
    """The kernel op covering this IR op's kind and structure (depthwise 3×3 convolutions have
    their own)."""
    if isinstance(op, ig.Conv2d) and _is_dw3x3(op):
        return "s8_dwconv3x3_requant"
    entry = RUNNERS.get(type(op))
    return None if entry is None else entry[0]


def run(op: ig.IntOp, env: Env, path: str | None = None) -> np.ndarray | None:
    """op.reference(env) through its kernel (int64 like the reference), or None."""
    entry = RUNNERS.get(type(op))
    if entry is None:
        return None
    out = entry[1](op, env, path)
    return None if out is None else out.astype(np.int64)


def shape_line(op: ig.IntOp, env: Env) -> str | None:
    """The ek_bench shape of `op` on the inputs in `env` ("m=196 k=128 n=256"), or None."""
    if isinstance(op, ig.Linear):
        x = env[op.input]
        return f"m={x.size // x.shape[-1]} k={x.shape[-1]} n={op.weight.shape[0]}" \
               + (" relu=1" if op.relu else "")
    if isinstance(op, ig.Conv2d) and _is_dw3x3(op):
        n, c, h, w = env[op.input].shape
        return f"c={n * c} h={h} w_in={w} stride={op.stride[0]} pad={op.padding[0]}"
    if isinstance(op, ig.Conv2d):
        _, c, h, w = env[op.input].shape
        kh, kw = op.weight.shape[2:]
        return (f"c={c} h={h} w_in={w} o={op.weight.shape[0]} kh={kh} kw={kw} "
                f"sh={op.stride[0]} sw={op.stride[1]} ph={op.padding[0]} pw={op.padding[1]} "
                f"groups={op.groups}")
    if isinstance(op, ig.MatMul):
        a, b = env[op.a], env[op.b]
        return (f"m={a.shape[-2]} k={a.shape[-1]} n={b.shape[-1]} "
                f"a_unsigned={int(a.max(initial=0) > 127 or a.min(initial=0) >= 0)}")
    if isinstance(op, ig.Mean):
        x = env[op.input]
        axes = sorted(a % x.ndim for a in op.axes)
        outer = int(np.prod(x.shape[:axes[0]]))
        count = int(np.prod(x.shape[axes[0]:axes[-1] + 1]))
        return f"outer={outer} count={count} inner={x.size // (outer * count)}"
    if isinstance(op, ig.Shiftmax):
        x = env[op.input]
        return f"rows={x.size // x.shape[-1]} len={x.shape[-1]} x0={ek.shift_exp_x0(op.scale)}"
    if isinstance(op, ig.ShiftGelu):
        return f"count={env[op.input].size} x0={ek.shift_exp_x0(op.scale * op.alpha)}"
    if isinstance(op, ig.LayerNorm):
        x = env[op.input]
        return f"rows={x.size // x.shape[-1]} c={x.shape[-1]}"
    if isinstance(op, ig.AvgPool):
        n, c, h, w = env[op.input].shape
        return f"c={n * c} h={h} w_in={w} kernel={op.kernel} stride={op.stride} pad={op.padding}"
    if isinstance(op, (ig.Add, ig.Hardswish, ig.AddConst, ig.MulConst)):
        return f"count={env[op.output].size}"
    return None


def kernel_shapes(graph: ig.IntGraph, x: np.ndarray) -> list[dict[str, Any]]:
    """Distinct (kernel op, shape) of a graph on input x, with how many ops use each, in first-use
    order: what ek_bench times for an int-only artifact."""
    env: Env = {graph.input: np.asarray(x, dtype=np.float32)}
    seen: Counter[tuple[str, str]] = Counter()
    for op in graph.ops:
        env[op.output] = op.reference(env)
        name, line = kernel_op(op), shape_line(op, env)
        if name and line:
            seen[(name, line)] += 1
    return [{"op": name, "shape": line, "calls": n} for (name, line), n in seen.items()]
