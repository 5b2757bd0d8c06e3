"""The integer-only C kernels of kernels_arm/ on this machine, through ctypes.

The library is built by the package install (setup.py: kernels_arm/src → _ek_kernels*.so) and
walks the same kernel table as the C tests and benchmarks. Every op takes the integer-only IR's
parameters (edgekit.intonly.graph) and returns exactly what the op's `reference()` returns:

    from edgekit import kernels
    y = kernels.s8_gemm_requant(a, w, bias, mult, shift)         # int8 [m, n]
    kernels.kernels()                                              # every path, runs_here or not
    kernels.s8_shiftmax(x, scale, path="scalar")                   # force one path

On x86 the paths are `scalar` (vectorizer off) and `autovec`; NEON paths exist in aarch64
builds. Inputs are validated (dtype, ranges the kernels rely on) with errors naming the fix.
"""

from __future__ import annotations

import ctypes
import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import MissingDependency, UsageError

ISA_BITS = {1: "neon", 2: "dotprod", 4: "i8mm", 8: "avx2", 16: "avx512vnni"}
OPS = ("s8_gemm_requant", "s8_dwconv3x3_requant", "s8_shiftmax", "s8_shiftgelu",
       "s8_ilayernorm", "s8_avgpool_requant", "s8_add_requant", "s8_hardswish",
       "s8_addconst_requant", "s8_mulconst_requant", "s8_matmul_requant", "s8_conv2d_requant",
       "s8_mean_requant", "x8_transpose", "x8_lut")
INT32 = (-2**31, 2**31 - 1)


class _Kernel(ctypes.Structure):
    _fields_ = [("op", ctypes.c_char_p), ("path", ctypes.c_char_p), ("name", ctypes.c_char_p),
                ("isa", ctypes.c_uint), ("fn", ctypes.c_void_p)]


class _ConvShape(ctypes.Structure):
    """ek_conv2d_shape"""
    _fields_ = [(name, ctypes.c_size_t)
                for name in ("c", "h", "w", "o", "groups", "kh", "kw", "sh", "sw", "ph", "pw")]


@dataclass(frozen=True)
class Kernel:
    op: str
    path: str
    name: str
    isa: tuple[str, ...]  # ISA extensions it needs
    runs_here: bool
    fn: int  # address


def _library_file() -> Path:
    import importlib.machinery

    here = Path(__file__).parent
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (here / f"_ek_kernels{suffix}").exists():
            return here / f"_ek_kernels{suffix}"
    raise MissingDependency("the edgekit kernel library (_ek_kernels) is not built",
                            hint="reinstall edgekit (`make setup`, or pip install -e .) with a "
                                 "C compiler present; it is compiled at install time")


@functools.cache
def library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(_library_file()))
    lib.ek_kernel_table.restype = ctypes.POINTER(_Kernel)
    lib.ek_kernel_table.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
    lib.ek_cpu_isa.restype = ctypes.c_uint
    lib.ek_build_info.restype = ctypes.c_char_p
    for helper in ("ek_s8_conv2d_packed_k", "ek_s8_conv2d_scratch"):
        getattr(lib, helper).restype = ctypes.c_size_t
        getattr(lib, helper).argtypes = [ctypes.POINTER(_ConvShape)]
    lib.ek_s8_conv2d_pack.argtypes = [ctypes.POINTER(_ConvShape), ctypes.c_void_p,
                                      ctypes.c_void_p]
    lib.ek_s8_matmul_scratch.restype = ctypes.c_size_t
    lib.ek_s8_matmul_scratch.argtypes = [ctypes.c_size_t] * 3 + [ctypes.c_int]
    return lib


def cpu_isa() -> tuple[str, ...]:
    bits = library().ek_cpu_isa()
    return tuple(name for bit, name in ISA_BITS.items() if bits & bit)


def build_info() -> str:
    return str(library().ek_build_info().decode())


@functools.cache
def kernels() -> tuple[Kernel, ...]:
    """Every kernel of the library, in table order (slowest first per op)."""
    lib = library()
    count = ctypes.c_size_t()
    table = lib.ek_kernel_table(ctypes.byref(count))
    have = lib.ek_cpu_isa()
    out = []
    for i in range(count.value):
        k = table[i]
        out.append(Kernel(k.op.decode(), k.path.decode(), k.name.decode(),
                          tuple(n for b, n in ISA_BITS.items() if k.isa & b),
                          (k.isa & ~have) == 0, int(k.fn)))
    return tuple(out)


def paths(op: str) -> list[str]:
    """The paths of `op` this CPU runs, slowest first."""
    return [k.path for k in kernels() if k.op == op and k.runs_here]


def select(op: str, path: str | None = None) -> Kernel:
    """`path` of `op`, or the fastest one this CPU runs."""
    if op not in OPS:
        raise UsageError(f"unknown kernel op '{op}'", hint=f"one of: {', '.join(OPS)}")
    runnable = [k for k in kernels() if k.op == op and k.runs_here]
    if path is None:
        return runnable[-1]
    for k in kernels():
        if k.op == op and k.path == path:
            if not k.runs_here:
                raise UsageError(f"{k.name} needs {'+'.join(k.isa)}, which this CPU lacks",
                                 hint=f"paths here: {', '.join(x.path for x in runnable)}")
            return k
    raise UsageError(f"{op} has no path '{path}' in this build ({build_info()})",
                     hint=f"paths here: {', '.join(x.path for x in runnable)}")


# --- argument checking and marshalling ------------------------------------------------------

def _array(x: Any, dtype: type, what: str, lo: int | None = None, hi: int | None = None
           ) -> np.ndarray:
    """x as a contiguous array of `dtype`; refuses values outside [lo, hi] (default: dtype)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "iub":
        raise UsageError(f"{what} must be integers, got {arr.dtype}",
                         hint="the kernels take the integer-only IR's int tensors")
    info: Any = np.iinfo(dtype)
    lo = info.min if lo is None else lo
    hi = info.max if hi is None else hi
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise UsageError(f"{what} out of range [{lo}, {hi}] (min {arr.min()}, max {arr.max()})",
                         hint="these kernels implement edgekit.intonly.graph's int8 ops")
    return np.ascontiguousarray(arr, dtype=dtype)


def _one_image(x: Any, what: str) -> tuple[np.ndarray, bool]:
    """An int8 [c, h, w] image from [c, h, w] or [1, c, h, w]; whether it had the batch axis."""
    x8 = _array(x, np.int8, "x")
    if x8.ndim == 4:
        if x8.shape[0] != 1:
            raise UsageError(f"{what} runs one image at a time", hint="loop over the batch")
        return x8[0], True
    if x8.ndim != 3:
        raise UsageError(f"{what} takes [c, h, w] or [1, c, h, w], got shape {x8.shape}")
    return x8, False


def _shift(shift: int) -> int:
    if not 0 <= int(shift) <= 62:
        raise UsageError(f"shift {shift} outside 0..62")
    return int(shift)


def _scalar32(v: int, what: str) -> int:
    if not INT32[0] <= int(v) <= INT32[1]:
        raise UsageError(f"{what} {v} does not fit int32")
    return int(v)


def shift_exp_x0(scale: float) -> int:
    """The kernels' x0 (reference.shift_exp_x0), within the int32 lanes' range |x0| <= 2^15."""
    from edgekit.intonly.reference import shift_exp_x0 as reference_x0

    if not (scale > 0 and math.isfinite(scale)):
        raise UsageError(f"scale must be positive and finite, got {scale}")
    try:
        x0 = reference_x0(scale)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if x0 < -(2**15):
        raise UsageError(f"scale {scale} outside shift_exp's kernel range (scale >= 2^-15)")
    return x0


def _fn(op: str, path: str | None, argtypes: list[Any]) -> Any:
    return ctypes.CFUNCTYPE(None, *argtypes)(select(op, path).fn)


S, INT, P = ctypes.c_size_t, ctypes.c_int, ctypes.c_void_p
I32 = ctypes.c_int32


def _addr(arr: np.ndarray) -> int:
    return int(arr.ctypes.data)


# --- the ops ---------------------------------------------------------------------------------

def s8_gemm_requant(a: Any, w: Any, bias: Any, mult: Any, shift: int, relu: bool = False,
                    path: str | None = None) -> np.ndarray:
    """graph.Linear: clamp(round((a @ wᵀ + bias) · mult / 2^shift)); a [..., k], w [n, k]."""
    a8, w8 = _array(a, np.int8, "a"), _array(w, np.int8, "w")
    if w8.ndim != 2 or a8.shape[-1] != w8.shape[1]:
        raise UsageError(f"gemm shapes a {a8.shape} and w {w8.shape} do not match",
                         hint="w is [out, in] (PyTorch Linear), a is [..., in]")
    n, k = w8.shape
    b32 = _array(np.broadcast_to(bias, (n,)), np.int32, "bias")
    m32 = _array(np.broadcast_to(mult, (n,)), np.int32, "mult")
    lead = a8.shape[:-1]
    m = int(np.prod(lead, dtype=np.int64))
    y = np.empty((m, n), dtype=np.int8)
    _fn("s8_gemm_requant", path, [S, S, S, P, P, P, P, INT, I32, P])(
        m, k, n, _addr(a8), _addr(w8), _addr(b32), _addr(m32), _shift(shift),
        0 if relu else -128, _addr(y))
    return y.reshape(*lead, n)


def s8_dwconv3x3_requant(x: Any, w: Any, bias: Any, mult: Any, shift: int, stride: int = 1,
                         pad: int = 1, relu: bool = False, path: str | None = None
                         ) -> np.ndarray:
    """graph.Conv2d with groups = channels and a 3×3 kernel; x [c, h, w] or [1, c, h, w]."""
    x8, batched = _one_image(x, "dwconv")
    if stride not in (1, 2) or pad not in (0, 1):
        raise UsageError(f"dwconv3x3 takes stride 1|2 and pad 0|1; got {stride}, {pad}")
    c, h, wd = x8.shape
    w8 = _array(np.asarray(w).reshape(c, 9), np.int8, "w")
    b32 = _array(np.broadcast_to(bias, (c,)), np.int32, "bias")
    m32 = _array(np.broadcast_to(mult, (c,)), np.int32, "mult")
    oh, ow = (h + 2 * pad - 3) // stride + 1, (wd + 2 * pad - 3) // stride + 1
    if oh < 1 or ow < 1:
        raise UsageError(f"input {h}×{wd} is smaller than the 3×3 window")
    y = np.empty((c, oh, ow), dtype=np.int8)
    _fn("s8_dwconv3x3_requant", path, [S, S, S, INT, INT, P, P, P, P, INT, I32, P])(
        c, h, wd, stride, pad, _addr(x8), _addr(w8), _addr(b32), _addr(m32), _shift(shift),
        0 if relu else -128, _addr(y))
    return y[None] if batched else y


def s8_shiftmax(x: Any, scale: float, n: int = 15, out_bits: int = 8, path: str | None = None
                ) -> np.ndarray:
    """graph.Shiftmax over the last axis: uint8 in [0, 2^(out_bits−1)]."""
    x8 = _array(x, np.int8, "x")
    if not 1 <= out_bits <= 8 or not 0 <= n <= 15:
        raise UsageError(f"shiftmax needs 1 <= out_bits <= 8 and 0 <= n <= 15 (got {out_bits}, "
                         f"{n})")
    length = x8.shape[-1]
    rows = x8.size // max(length, 1)
    y = np.empty(x8.shape, dtype=np.uint8)
    scratch = np.empty(max(length, 1), dtype=np.int32)
    _fn("s8_shiftmax", path, [S, S, P, I32, INT, INT, P, P])(
        rows, length, _addr(x8), shift_exp_x0(scale), n, out_bits, _addr(scratch), _addr(y))
    return y


def s8_shiftgelu(x: Any, scale: float, mult: int, shift: int, n: int = 15, sig_bits: int = 8,
                 alpha: float | None = None, path: str | None = None) -> np.ndarray:
    """graph.ShiftGelu: clamp(round(x·σ(α·x)_int · mult / 2^shift)); α 1.702 (GELU) or 1 (SiLU)."""
    from edgekit.intonly.reference import GELU_ALPHA

    x8 = _array(x, np.int8, "x")
    if not 1 <= sig_bits <= 8 or not 0 <= n <= 15:
        raise UsageError("shiftgelu needs 1 <= sig_bits <= 8 and 0 <= n <= 15")
    y = np.empty(x8.shape, dtype=np.int8)
    x0 = shift_exp_x0(scale * (GELU_ALPHA if alpha is None else alpha))
    _fn("s8_shiftgelu", path, [S, P, I32, INT, INT, I32, INT, P])(
        x8.size, _addr(x8), x0, n, sig_bits, _scalar32(mult, "mult"), _shift(shift), _addr(y))
    return y


def s8_ilayernorm(x: Any, gamma_mult: Any, beta: Any, shift: int, path: str | None = None
                  ) -> np.ndarray:
    """graph.LayerNorm over the last axis (I-LayerNorm, then the integer affine)."""
    x8 = _array(x, np.int8, "x")
    c = x8.shape[-1]
    if c >= 2**17:
        raise UsageError(f"layernorm width {c} too large (< 2^17)")
    g32 = _array(np.broadcast_to(gamma_mult, (c,)), np.int32, "gamma_mult", -(2**24), 2**24 - 1)
    b64 = _array(np.broadcast_to(beta, (c,)), np.int64, "beta", -(2**62), 2**62)
    y = np.empty(x8.shape, dtype=np.int8)
    _fn("s8_ilayernorm", path, [S, S, P, P, P, INT, P])(
        x8.size // max(c, 1), c, _addr(x8), _addr(g32), _addr(b64), _shift(shift), _addr(y))
    return y


def s8_avgpool_requant(x: Any, kernel: int, stride: int, pad: int, mult: Any, shift: int,
                       path: str | None = None) -> np.ndarray:
    """graph.AvgPool (count_include_pad=False through per-position multipliers mult[oh, ow])."""
    x8, batched = _one_image(x, "avgpool")
    c, h, wd = x8.shape
    oh, ow = (h + 2 * pad - kernel) // stride + 1, (wd + 2 * pad - kernel) // stride + 1
    if kernel < 1 or stride < 1 or pad < 0 or oh < 1 or ow < 1 or 2 * pad > kernel:
        raise UsageError(f"bad pool: kernel {kernel}, stride {stride}, pad {pad} on {h}×{wd}")
    m32 = _array(np.asarray(mult).reshape(oh, ow), np.int32, "mult")
    y = np.empty((c, oh, ow), dtype=np.int8)
    _fn("s8_avgpool_requant", path, [S, S, S, INT, INT, INT, P, P, INT, P])(
        c, h, wd, kernel, stride, pad, _addr(x8), _addr(m32), _shift(shift), _addr(y))
    return y[None] if batched else y


def s8_add_requant(a: Any, b: Any, mult_a: int, mult_b: int, shift: int,
                   path: str | None = None) -> np.ndarray:
    """graph.Add: clamp(round((a·mult_a + b·mult_b) / 2^shift))."""
    a8, b8 = _array(a, np.int8, "a"), _array(b, np.int8, "b")
    if a8.shape != b8.shape:
        raise UsageError(f"add shapes differ: {a8.shape} vs {b8.shape}",
                         hint="broadcast in the caller; the kernel adds equal shapes")
    y = np.empty(a8.shape, dtype=np.int8)
    _fn("s8_add_requant", path, [S, P, P, I32, I32, INT, P])(
        a8.size, _addr(a8), _addr(b8), _scalar32(mult_a, "mult_a"), _scalar32(mult_b, "mult_b"),
        _shift(shift), _addr(y))
    return y


def s8_hardswish(x: Any, r3: int, r6: int, mult: int, shift: int, path: str | None = None
                 ) -> np.ndarray:
    """graph.Hardswish: t = clamp(x + r3, 0, r6); clamp(round(x·t · mult / 2^shift))."""
    x8 = _array(x, np.int8, "x")
    y = np.empty(x8.shape, dtype=np.int8)
    _fn("s8_hardswish", path, [S, P, I32, I32, I32, INT, P])(
        x8.size, _addr(x8), _scalar32(r3, "r3"), _scalar32(r6, "r6"), _scalar32(mult, "mult"),
        _shift(shift), _addr(y))
    return y


def s8_addconst_requant(x: Any, mult: int, c: Any, shift: int, path: str | None = None
                        ) -> np.ndarray:
    """graph.AddConst with c one int64 per element: clamp(round((x·mult + c) / 2^shift))."""
    x8 = _array(x, np.int8, "x")
    c64 = np.ascontiguousarray(np.broadcast_to(np.asarray(c, dtype=np.int64), x8.shape))
    if np.abs(c64).max(initial=0) >= 2**61:
        raise UsageError("constant outside ±2^61", hint="the kernel's int64 sum needs |c| < 2^61")
    y = np.empty(x8.shape, dtype=np.int8)
    _fn("s8_addconst_requant", path, [S, P, I32, P, INT, P])(
        x8.size, _addr(x8), _scalar32(mult, "mult"), _addr(c64), _shift(shift), _addr(y))
    return y


def s8_mulconst_requant(x: Any, m: Any, shift: int, path: str | None = None) -> np.ndarray:
    """graph.MulConst with m one int32 per element: clamp(round(x·m / 2^shift))."""
    x8 = _array(x, np.int8, "x")
    m64 = np.broadcast_to(np.asarray(m, dtype=np.int64), x8.shape)
    if m64.size and (m64.min() < INT32[0] or m64.max() > INT32[1]):
        raise UsageError("multiplier outside int32", hint="requantize with a smaller shift")
    m32 = np.ascontiguousarray(m64, dtype=np.int32)
    y = np.empty(x8.shape, dtype=np.int8)
    _fn("s8_mulconst_requant", path, [S, P, P, INT, P])(
        x8.size, _addr(x8), _addr(m32), _shift(shift), _addr(y))
    return y


def s8_matmul_requant(a: Any, b: Any, mult: int, shift: int, path: str | None = None
                      ) -> np.ndarray:
    """graph.MatMul of a [m, k] by b [k, n]: clamp(round(a @ b · mult / 2^shift)); a int8, or
    uint8 softmax probabilities (taken as such when a value exceeds 127 or a is uint8)."""
    a_in = np.asarray(a)
    unsigned = a_in.dtype == np.uint8 or bool(a_in.size and a_in.max() > 127)
    a8 = _array(a_in, np.uint8 if unsigned else np.int8, "a")
    b8 = _array(b, np.int8, "b")
    if a8.ndim != 2 or b8.ndim != 2 or a8.shape[1] != b8.shape[0]:
        raise UsageError(f"matmul shapes a {a8.shape} and b {b8.shape} do not chain",
                         hint="a is [m, k], b is [k, n]; loop over batch axes")
    (m, k), n = a8.shape, b8.shape[1]
    if k * 2**15 >= 2**31:
        raise UsageError(f"k = {k} can overflow the int32 accumulator (k < 65536)")
    bt = np.ascontiguousarray(b8.T)
    m32 = np.full(n, _scalar32(mult, "mult"), dtype=np.int32)
    scratch = np.empty(library().ek_s8_matmul_scratch(m, k, n, int(unsigned)) + 16, np.uint8)
    y = np.empty((m, n), dtype=np.int8)
    _fn("s8_matmul_requant", path, [S, S, S, INT, P, P, P, INT, P, P, P])(
        m, k, n, int(unsigned), _addr(a8), _addr(bt), _addr(m32), _shift(shift),
        _addr(scratch), None, _addr(y))
    return y


def s8_conv2d_requant(x: Any, w: Any, bias: Any, mult: Any, shift: int,
                      stride: tuple[int, int] = (1, 1), padding: tuple[int, int] = (0, 0),
                      groups: int = 1, relu: bool = False, path: str | None = None
                      ) -> np.ndarray:
    """graph.Conv2d of one image, any geometry; x [c, h, w] or [1, c, h, w], w [o, c/g, kh, kw]."""
    x8, batched = _one_image(x, "conv2d")
    w8 = _array(w, np.int8, "w")
    c, h, wd = x8.shape
    if w8.ndim != 4 or groups < 1 or c % groups or w8.shape[0] % groups or \
            w8.shape[1] * groups != c:
        raise UsageError(f"conv2d weight {w8.shape} does not fit {c} channels in {groups} "
                         "groups", hint="w is [out, in/groups, kh, kw]")
    o, _, kh, kw = w8.shape
    (sh, sw), (ph, pw) = stride, padding
    if min(sh, sw) < 1 or not (0 <= ph < kh and 0 <= pw < kw):
        raise UsageError(f"stride {stride} / padding {padding} outside stride >= 1, "
                         "0 <= pad < kernel")
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    if oh < 1 or ow < 1:
        raise UsageError(f"input {h}×{wd} is smaller than the {kh}×{kw} kernel")
    if (w8.shape[1] * kh * kw) * 2**14 + np.abs(np.asarray(bias)).max(initial=0) >= 2**31:
        raise UsageError("the int32 accumulator bound is exceeded (taps · 2^14 + |bias|)")
    shape = _ConvShape(c, h, wd, o, groups, kh, kw, sh, sw, ph, pw)
    lib = library()
    packed = np.empty(o * (lib.ek_s8_conv2d_packed_k(shape) + kh * kw) + 1, np.int8)
    lib.ek_s8_conv2d_pack(shape, _addr(w8), _addr(packed))
    scratch = np.empty(lib.ek_s8_conv2d_scratch(shape) + 16, np.uint8)
    b32 = _array(np.broadcast_to(bias, (o,)), np.int32, "bias")
    m32 = _array(np.broadcast_to(mult, (o,)), np.int32, "mult", lo=0)
    y = np.empty((o, oh, ow), dtype=np.int8)
    _fn("s8_conv2d_requant", path, [P, P, P, P, P, INT, I32, P, P, P])(
        ctypes.addressof(shape), _addr(x8), _addr(packed), _addr(b32), _addr(m32),
        _shift(shift), 0 if relu else -128, _addr(scratch), None, _addr(y))
    return y[None] if batched else y


def s8_mean_requant(x: Any, axes: tuple[int, ...], mult: int, shift: int,
                    keepdims: bool = False, path: str | None = None) -> np.ndarray:
    """graph.Mean over a contiguous block of axes: clamp(round(Σ x · mult / 2^shift))."""
    x8 = _array(x, np.int8, "x")
    axes = tuple(sorted(a % x8.ndim for a in axes))
    if not axes or list(axes) != list(range(axes[0], axes[-1] + 1)):
        raise UsageError(f"mean axes {axes} are not one contiguous block",
                         hint="transpose the reduced axes next to each other first")
    outer = int(np.prod(x8.shape[:axes[0]], dtype=np.int64))
    count = int(np.prod(x8.shape[axes[0]:axes[-1] + 1], dtype=np.int64))
    inner = int(np.prod(x8.shape[axes[-1] + 1:], dtype=np.int64))
    if count >= 2**24 or not 0 <= mult <= INT32[1]:
        raise UsageError("mean needs count < 2^24 and 0 <= mult < 2^31")
    y = np.empty(outer * inner, dtype=np.int8)
    _fn("s8_mean_requant", path, [S, S, S, P, I32, INT, P])(
        outer, count, inner, _addr(x8), int(mult), _shift(shift), _addr(y))
    kept = [d for i, d in enumerate(x8.shape) if i not in axes]
    if keepdims:
        kept = [1 if i in axes else d for i, d in enumerate(x8.shape)]
    return y.reshape(kept)


def x8_transpose(x: Any, path: str | None = None) -> np.ndarray:
    """The transpose of a 2-D int8 or uint8 matrix (graph.Layout with perm (1, 0))."""
    arr = np.asarray(x)
    dtype = np.uint8 if arr.dtype == np.uint8 or (arr.size and arr.max() > 127) else np.int8
    x8 = _array(arr, dtype, "x")
    if x8.ndim != 2:
        raise UsageError(f"x8_transpose takes a matrix, got shape {x8.shape}",
                         hint="loop over batch axes")
    rows, cols = x8.shape
    y = np.empty((cols, rows), dtype=dtype)
    _fn("x8_transpose", path, [S, S, P, S, P, S])(rows, cols, _addr(x8), cols, _addr(y), rows)
    return y


def x8_lut(x: Any, table: Any, path: str | None = None) -> np.ndarray:
    """y = table[x] for int8 x (indexed by its byte: -1 → table[255]) or uint8 x; table: 256
    int8 or uint8 values, which set y's dtype."""
    arr, tab = np.asarray(x), np.asarray(table)
    if tab.shape != (256,):
        raise UsageError(f"the table has shape {tab.shape}, not (256,)")
    t_dtype = np.uint8 if tab.dtype == np.uint8 or (tab.size and tab.max() > 127) else np.int8
    x_dtype = np.uint8 if arr.dtype == np.uint8 or (arr.size and arr.max() > 127) else np.int8
    x8 = _array(arr, x_dtype, "x")
    t8 = _array(tab, t_dtype, "table")
    y = np.empty(x8.shape, dtype=t_dtype)
    _fn("x8_lut", path, [S, P, P, P])(x8.size, _addr(x8), _addr(t8), _addr(y))
    return y
