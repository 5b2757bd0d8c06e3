"""The IR's third backend: the `.ekr` file that edgekit's native runtime (kernels_arm/runtime)
executes, beside `reference()` (the definition) and the ONNX emitter.

One `IntGraph` is lowered op by op by LOWERINGS (a registry keyed by IR op type) into fixed-size
records over typed tensors, with every constant in a data section and a precomputed memory plan
(liveness-based, greedy by size, like TFLite's arena planner). The layout is the C loader's
(`kernels_arm/runtime/ekr_format.h`, the authority): little-endian,

    header   128 B  magic "EKR\\0", version, crc32 of bytes [16, end), sizes and offsets
    tensors  64 B each  dtype, rank, dims[6], storage (arena | const), offset, nbytes
    ops      192 B each type, inputs[8], output, scratch (offset, bytes), params int64[16]
    data     constants, 16-byte aligned

The loader treats the file as untrusted and re-checks everything written here (shapes, dtypes,
parameter ranges where the kernels are exact, the memory plan's non-overlap).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.intonly import graph as ig
from edgekit.intonly import reference as ref

MAGIC = b"EKR\0"
VERSION = 1
HEADER_BYTES, TENSOR_BYTES, OP_BYTES = 128, 64, 192
MAX_RANK, MAX_INPUTS, MAX_PARAMS = 6, 8, 16
ALIGN = 16

# dtype codes (ekr_format.h) and their numpy types
F32, I8, U8, I32, I64 = 1, 2, 3, 4, 5
DTYPES: dict[int, Any] = {F32: np.float32, I8: np.int8, U8: np.uint8, I32: np.int32,
                          I64: np.int64}
ARENA, CONST = 1, 2

# op codes (ekr_format.h: EKR_OP_*)
OPS = {"quantize": 1, "dequantize": 2, "linear": 3, "conv2d": 4, "matmul": 5, "add": 6,
       "shiftmax": 7, "shiftgelu": 8, "layernorm": 9, "reshape": 10, "transpose": 11,
       "slice": 12, "concat": 13, "mean": 14, "relu": 15, "avgpool": 16, "mulconst": 17,
       "addconst": 18, "hardswish": 19}


class EkrError(ValueError):
    """The graph cannot be written as .ekr (an op or a parameter the runtime does not run)."""


@dataclass
class Tensor:
    dtype: int
    shape: tuple[int, ...]
    storage: int
    data: bytes = b""  # constants
    offset: int = 0  # arena or data-section offset, filled by the planner / writer

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(DTYPES[self.dtype]).itemsize


@dataclass
class Op:
    kind: str
    inputs: list[int]
    output: int
    params: list[int] = field(default_factory=list)
    scratch_bytes: int = 0
    scratch_offset: int = 0


@dataclass
class Lowering:
    """The graph being lowered: tensors by id, IR names → ids, ops in order."""
    shapes: dict[str, tuple[int, ...]]
    tensors: list[Tensor] = field(default_factory=list)
    ids: dict[str, int] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)

    def activation(self, name: str, dtype: int, shape: tuple[int, ...] | None = None) -> int:
        self.tensors.append(Tensor(dtype, shape if shape is not None else self.shapes[name],
                                   ARENA))
        self.ids[name] = len(self.tensors) - 1
        return self.ids[name]

    def const(self, array: np.ndarray, dtype: int) -> int:
        np_type = DTYPES[dtype]
        a = np.asarray(array)
        if np.issubdtype(np_type, np.integer):
            info = np.iinfo(np_type)
            if a.size and (a.min() < info.min or a.max() > info.max):
                raise EkrError(f"constant outside {np.dtype(np_type).name}: "
                               f"[{a.min()}, {a.max()}]")
        data = np.ascontiguousarray(a.astype(np_type)).astype(np.dtype(np_type).newbyteorder("<"))
        self.tensors.append(Tensor(dtype, tuple(int(d) for d in a.shape), CONST, data.tobytes()))
        return len(self.tensors) - 1

    def dtype(self, name: str) -> int:
        return self.tensors[self.ids[name]].dtype

    def emit(self, kind: str, inputs: list[int], output: int, params: list[int],
             scratch: int = 0) -> None:
        self.ops.append(Op(kind, inputs, output, [int(p) for p in params], scratch))


def _i8(low: Lowering, name: str) -> int:
    if low.dtype(name) != I8:
        raise EkrError(f"{name}: expected an int8 tensor")
    return low.ids[name]


def _float_bits(value: float, fmt: str) -> int:
    return int.from_bytes(struct.pack("<" + fmt, value), "little")


Lower = Callable[[Lowering, Any], None]
LOWERINGS: dict[type, Lower] = {}


def _lowers(op_type: type) -> Callable[[Lower], Lower]:
    def deco(fn: Lower) -> Lower:
        LOWERINGS[op_type] = fn
        return fn
    return deco


@_lowers(ig.Quantize)
def _quantize(low: Lowering, op: ig.Quantize) -> None:
    x = low.ids[op.input]
    low.emit("quantize", [x], low.activation(op.output, I8), [_float_bits(op.scale, "d")])


@_lowers(ig.Dequantize)
def _dequantize(low: Lowering, op: ig.Dequantize) -> None:
    x = low.ids[op.input]
    low.emit("dequantize", [x], low.activation(op.output, F32),
             [_float_bits(float(np.float32(op.scale)), "f")])


@_lowers(ig.Linear)
def _linear(low: Lowering, op: ig.Linear) -> None:
    ins = [_i8(low, op.input), low.const(op.weight, I8), low.const(op.bias, I32),
           low.const(op.mult, I32)]
    low.emit("linear", ins, low.activation(op.output, I8), [op.shift, int(op.relu)])


def conv_scratch_bytes(x_shape: tuple[int, ...], w_shape: tuple[int, ...],
                       stride: tuple[int, int], padding: tuple[int, int], groups: int) -> int:
    """ekr_conv2d_scratch(): one group's input as NHWC, its im2col rows (k padded to 16) and
    its gemm output, unless the conv is depthwise (direct, no scratch). The C loader checks
    the same formula."""
    _, c, h, w = x_shape
    cout, cpg, kh, kw = w_shape
    if groups == c and cpg == 1 and cout == c:
        return 0
    oh = (h + 2 * padding[0] - kh) // stride[0] + 1
    ow = (w + 2 * padding[1] - kw) // stride[1] + 1
    k = _align(cpg * kh * kw)
    return _align(h * w * cpg) + _align(oh * ow * k) + oh * ow * (cout // groups)


@_lowers(ig.Conv2d)
def _conv2d(low: Lowering, op: ig.Conv2d) -> None:
    x = _i8(low, op.input)
    ins = [x, low.const(op.weight, I8), low.const(op.bias, I32), low.const(op.mult, I32)]
    scratch = conv_scratch_bytes(low.tensors[x].shape, op.weight.shape, op.stride, op.padding,
                                 op.groups)
    low.emit("conv2d", ins, low.activation(op.output, I8),
             [op.shift, int(op.relu), *op.stride, *op.padding, op.groups], scratch)


@_lowers(ig.MatMul)
def _matmul(low: Lowering, op: ig.MatMul) -> None:
    """a @ b (b as [..., k, n]; _fold_transposes may hand it over as [..., n, k])."""
    a, b = low.ids[op.a], _i8(low, op.b)
    rows, k = low.tensors[a].shape[-2:]
    n = low.tensors[b].shape[-1]
    unsigned = low.tensors[a].dtype == U8
    low.emit("matmul", [a, b], low.activation(op.output, I8), [op.mult, op.shift, 0],
             matmul_scratch_bytes(rows, k, n, unsigned, False))


def _fold_transposes(low: Lowering) -> None:
    """The gemm takes b as [n][k]. When a matmul's b is the output of a transpose read by
    nothing else (attention's Kᵀ, V's head permute), that transpose writes bᵀ instead (its
    permutation with the last two axes swapped) and the matmul reads it flagged (p[2] = 1):
    one copy instead of two. A swap that becomes the identity leaves the transpose without
    readers (_drop_dead_ops removes it)."""
    readers: dict[int, int] = {}
    for op in low.ops:
        for t in op.inputs:
            readers[t] = readers.get(t, 0) + 1
    producers = {op.output: op for op in low.ops}
    for op in low.ops:
        if op.kind != "matmul" or op.params[2]:
            continue
        b = op.inputs[1]
        producer = producers.get(b)
        if producer is None or producer.kind != "transpose" or readers.get(b) != 1:
            continue
        perm = list(producer.params)
        perm[-2], perm[-1] = perm[-1], perm[-2]
        shape = low.tensors[b].shape
        low.tensors[b].shape = (*shape[:-2], shape[-1], shape[-2])
        rows, k = low.tensors[op.inputs[0]].shape[-2:]
        if perm == list(range(len(perm))):
            op.inputs[1] = producer.inputs[0]
        else:
            producer.params = perm
        op.params[2] = 1
        op.scratch_bytes = matmul_scratch_bytes(rows, k, shape[-1],
                                                low.tensors[op.inputs[0]].dtype == U8, True)


def matmul_scratch_bytes(rows: int, k: int, n: int, unsigned: bool, b_transposed: bool) -> int:
    """ekr_matmul_scratch(): bias [n] int32, bᵀ [n][k] (unless b comes transposed), and for
    uint8 a, a − 128 [rows][k]."""
    return _align(4 * n) + (0 if b_transposed else _align(k * n)) + (rows * k if unsigned else 0)


@_lowers(ig.Add)
def _add(low: Lowering, op: ig.Add) -> None:
    ins = [_i8(low, op.a), _i8(low, op.b)]
    if low.tensors[ins[0]].shape != low.tensors[ins[1]].shape:
        raise EkrError(f"{op.output}: add of differently shaped tensors (broadcast)")
    low.emit("add", ins, low.activation(op.output, I8), [op.mult_a, op.mult_b, op.shift])


@_lowers(ig.Shiftmax)
def _shiftmax(low: Lowering, op: ig.Shiftmax) -> None:
    x = _i8(low, op.input)
    length = low.tensors[x].shape[-1]
    low.emit("shiftmax", [x], low.activation(op.output, U8),
             [ref.shift_exp_x0(op.scale), op.n, op.out_bits], 4 * length)


@_lowers(ig.ShiftGelu)
def _shiftgelu(low: Lowering, op: ig.ShiftGelu) -> None:
    low.emit("shiftgelu", [_i8(low, op.input)], low.activation(op.output, I8),
             [ref.shift_exp_x0(op.scale * op.alpha), op.n, op.sig_bits, op.mult, op.shift])


@_lowers(ig.LayerNorm)
def _layernorm(low: Lowering, op: ig.LayerNorm) -> None:
    ins = [_i8(low, op.input), low.const(op.gamma_mult, I32), low.const(op.beta, I64)]
    low.emit("layernorm", ins, low.activation(op.output, I8), [op.shift])


@_lowers(ig.Layout)
def _layout(low: Lowering, op: ig.Layout) -> None:
    x = low.ids[op.input]
    dtype = low.tensors[x].dtype
    if op.shape is not None:
        shape = tuple(int(d) for d in np.empty(low.tensors[x].shape, np.int8).reshape(
            op.shape).shape)
        target = op.output if op.perm is None else f"{op.output}::reshaped"
        y = low.activation(target, dtype, shape)
        low.emit("reshape", [x], y, [])
        x = y
    if op.perm is not None:
        low.emit("transpose", [x], low.activation(op.output, dtype), list(op.perm))
    elif op.shape is None:
        low.emit("reshape", [x], low.activation(op.output, dtype), [])


@_lowers(ig.Slice)
def _slice(low: Lowering, op: ig.Slice) -> None:
    x = low.ids[op.input]
    dim = low.tensors[x].shape[op.axis]
    start, end, step = slice(op.start, op.end, op.step).indices(dim)
    low.emit("slice", [x], low.activation(op.output, low.tensors[x].dtype),
             [op.axis, start, max(end, start), step])


@_lowers(ig.Concat)
def _concat(low: Lowering, op: ig.Concat) -> None:
    if len(op.inputs) > MAX_INPUTS:
        raise EkrError(f"{op.output}: concat of {len(op.inputs)} tensors (at most "
                       f"{MAX_INPUTS})")
    low.emit("concat", [_i8(low, i) for i in op.inputs], low.activation(op.output, I8),
             [op.axis, op.shift, *op.mults])


@_lowers(ig.Mean)
def _mean(low: Lowering, op: ig.Mean) -> None:
    x = _i8(low, op.input)
    rank = len(low.tensors[x].shape)
    mask = sum(1 << (a % rank) for a in op.axes)
    low.emit("mean", [x], low.activation(op.output, I8), [mask, op.mult, op.shift])


@_lowers(ig.Relu)
def _relu(low: Lowering, op: ig.Relu) -> None:
    low.emit("relu", [_i8(low, op.input)], low.activation(op.output, I8), [])


@_lowers(ig.AvgPool)
def _avgpool(low: Lowering, op: ig.AvgPool) -> None:
    ins = [_i8(low, op.input), low.const(op.mult, I32)]
    low.emit("avgpool", ins, low.activation(op.output, I8),
             [op.kernel, op.stride, op.padding, op.shift])


def _broadcast_const(low: Lowering, x: int, const: np.ndarray, dtype: int) -> int:
    rank = len(low.tensors[x].shape)
    c = np.asarray(const)
    if c.ndim > rank:
        raise EkrError("constant of higher rank than its tensor")
    return low.const(c.reshape((1,) * (rank - c.ndim) + c.shape), dtype)


@_lowers(ig.MulConst)
def _mulconst(low: Lowering, op: ig.MulConst) -> None:
    x = _i8(low, op.input)
    low.emit("mulconst", [x, _broadcast_const(low, x, op.mult, I32)],
             low.activation(op.output, I8), [op.shift])


@_lowers(ig.AddConst)
def _addconst(low: Lowering, op: ig.AddConst) -> None:
    x = _i8(low, op.input)
    low.emit("addconst", [x, _broadcast_const(low, x, op.const, I64)],
             low.activation(op.output, I8), [op.mult, op.shift])


@_lowers(ig.Hardswish)
def _hardswish(low: Lowering, op: ig.Hardswish) -> None:
    low.emit("hardswish", [_i8(low, op.input)], low.activation(op.output, I8),
             [op.r3, op.r6, op.mult, op.shift])


# --- memory plan ------------------------------------------------------------------------------

def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


@dataclass(frozen=True)
class MemoryPlan:
    arena_bytes: int
    lower_bound: int  # the largest set of simultaneously live tensors (+ that step's scratch)


def plan_memory(low: Lowering, graph_input: int, graph_output: int) -> MemoryPlan:
    """Offsets for every arena tensor and op scratch: buffers live from their defining op to
    their last reader (graph input from the start, output to the end), a reshape shares its
    input's buffer, and buffers are placed largest first at the lowest offset that no
    time-overlapping buffer occupies."""
    n = len(low.ops)
    root = {t: t for t in range(len(low.tensors))}
    for op in low.ops:
        if op.kind == "reshape":
            root[op.output] = root[op.inputs[0]]
    first: dict[int, int] = {root[graph_input]: -1}
    last: dict[int, int] = {}
    for i, op in enumerate(low.ops):
        first.setdefault(root[op.output], i)
        last[root[op.output]] = max(last.get(root[op.output], i), i)
        for t in op.inputs:
            if low.tensors[t].storage == ARENA:
                last[root[t]] = max(last.get(root[t], i), i)
    last[root[graph_output]] = n
    buffers = [(root_id, low.tensors[root_id].nbytes, first[root_id], last[root_id])
               for root_id in first]
    buffers += [(-1 - i, op.scratch_bytes, i, i) for i, op in enumerate(low.ops)
                if op.scratch_bytes]
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    offsets: dict[int, int] = {}
    for key, size, lo, hi in sorted(buffers, key=lambda b: (-b[1], b[2])):
        offset = 0
        for o, s, f, l_ in sorted(placed):
            if f <= hi and lo <= l_ and o < offset + _align(size) and offset < o + s:
                offset = _align(o + s)
        placed.append((offset, _align(size), lo, hi))
        offsets[key] = offset
    for t, tensor in enumerate(low.tensors):
        if tensor.storage == ARENA:
            tensor.offset = offsets[root[t]]
    for i, op in enumerate(low.ops):
        if op.scratch_bytes:
            op.scratch_offset = offsets[-1 - i]
    lower = max((sum(_align(s) for _, s, f, l_ in buffers if f <= t <= l_)
                 for t in range(-1, n + 1)), default=0)
    arena = max((o + s for o, s, _, _ in placed), default=0)
    return MemoryPlan(arena, lower)


# --- the file -----------------------------------------------------------------------------

def lower(graph: ig.IntGraph, x: np.ndarray) -> Lowering:
    """The graph as .ekr tensors and ops; x (one example input) gives every tensor's shape."""
    env: ig.Env = {graph.input: np.asarray(x, dtype=np.float32)}
    shapes = {graph.input: tuple(env[graph.input].shape)}
    from edgekit.kernels import intops

    for op in graph.ops:
        out = intops.run(op, env)
        env[op.output] = op.reference(env) if out is None else out
        shapes[op.output] = tuple(int(d) for d in env[op.output].shape)
    low = Lowering(shapes)
    low.activation(graph.input, F32)
    for op in graph.ops:
        fn = LOWERINGS.get(type(op))
        if fn is None:
            raise EkrError(f"the .ekr runtime has no {type(op).__name__} op")
        fn(low, op)
        lowered = low.tensors[low.ids[op.output]].shape
        if lowered != shapes[op.output]:
            raise EkrError(f"{op.output}: lowered shape {lowered} != {shapes[op.output]}")
    _fold_transposes(low)
    _drop_dead_ops(low, low.ids[graph.input], low.ids[graph.output])
    for t in low.tensors:
        if len(t.shape) > MAX_RANK:
            raise EkrError(f"tensor of rank {len(t.shape)} (at most {MAX_RANK})")
    return low


def _drop_dead_ops(low: Lowering, graph_input: int, graph_output: int) -> None:
    """Remove ops nothing reads (a transpose folded into its matmul) and every tensor no
    remaining op touches, renumbering the rest."""
    while True:
        read = {t for op in low.ops for t in op.inputs} | {graph_output}
        kept = [op for op in low.ops if op.output in read]
        if len(kept) == len(low.ops):
            break
        low.ops = kept
    used = sorted({graph_input, graph_output} | {t for op in low.ops for t in op.inputs}
                  | {op.output for op in low.ops})
    renumber = {old: new for new, old in enumerate(used)}
    low.tensors = [low.tensors[old] for old in used]
    for op in low.ops:
        op.inputs = [renumber[t] for t in op.inputs]
        op.output = renumber[op.output]
    low.ids = {name: renumber[t] for name, t in low.ids.items() if t in renumber}


def to_ekr(graph: ig.IntGraph, x: np.ndarray) -> tuple[bytes, dict[str, Any]]:
    """The .ekr file of `graph` and what it holds (op histogram, arena, lower bound)."""
    low = lower(graph, x)
    graph_input, graph_output = low.ids[graph.input], low.ids[graph.output]
    if low.tensors[graph_output].dtype != F32:
        raise EkrError("the graph must end in a Dequantize (float output)")
    plan = plan_memory(low, graph_input, graph_output)
    tensors_offset = HEADER_BYTES
    ops_offset = tensors_offset + TENSOR_BYTES * len(low.tensors)
    data_offset = _align(ops_offset + OP_BYTES * len(low.ops))
    data = bytearray()
    for t in low.tensors:
        if t.storage == CONST:
            data.extend(b"\0" * (_align(len(data)) - len(data)))
            t.offset = len(data)
            data.extend(t.data)
    body = bytearray()
    for t in low.tensors:
        dims = list(t.shape) + [0] * (MAX_RANK - len(t.shape))
        body += struct.pack("<BBBB6iIQQ16x", t.dtype, len(t.shape), t.storage, 0, *dims, 0,
                            t.offset, t.nbytes)
    for op in low.ops:
        if len(op.inputs) > MAX_INPUTS or len(op.params) > MAX_PARAMS:
            raise EkrError(f"{op.kind}: too many inputs or parameters")
        ins = op.inputs + [0] * (MAX_INPUTS - len(op.inputs))
        params = op.params + [0] * (MAX_PARAMS - len(op.params))
        body += struct.pack("<II8IIIQQ16q", OPS[op.kind], len(op.inputs), *ins, op.output, 0,
                            op.scratch_offset, op.scratch_bytes, *params)
    body += b"\0" * (data_offset - HEADER_BYTES - len(body))
    body += data
    size = HEADER_BYTES + len(body)
    rest = struct.pack("<QIIQQQQQQII40x", size, len(low.tensors), len(low.ops), tensors_offset,
                       ops_offset, data_offset, len(data), plan.arena_bytes, plan.lower_bound,
                       graph_input, graph_output)
    crc = zlib.crc32(rest + bytes(body))
    header = MAGIC + struct.pack("<III", VERSION, HEADER_BYTES, crc) + rest
    assert len(header) == HEADER_BYTES
    kinds: dict[str, int] = {}
    for op in low.ops:
        kinds[op.kind] = kinds.get(op.kind, 0) + 1
    return header + bytes(body), {
        "ops": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
        "tensors": len(low.tensors), "constant_bytes": len(data),
        "arena_bytes": plan.arena_bytes, "arena_lower_bound": plan.lower_bound,
        "input_shape": list(low.tensors[graph_input].shape),
        "output_shape": list(low.tensors[graph_output].shape)}


def summarize(data: bytes) -> dict[str, Any]:
    """Header and op histogram of an .ekr file, parsed in Python with bounds checks (for
    `inspect`; the C loader is the full check). Raises EkrError on a malformed file."""
    if len(data) < HEADER_BYTES or data[:4] != MAGIC:
        raise EkrError("not an .ekr file (magic bytes)")
    version, header_bytes, crc = struct.unpack_from("<III", data, 4)
    (size, n_tensors, n_ops, tensors_offset, ops_offset, data_offset, data_bytes, arena, lower,
     graph_input, graph_output) = struct.unpack_from("<QIIQQQQQQII", data, 16)
    if version != VERSION:
        raise EkrError(f".ekr version {version}; this edgekit reads {VERSION}")
    if size != len(data):
        raise EkrError(f"truncated or padded: header says {size} bytes, file has {len(data)}")
    if zlib.crc32(data[16:]) != crc:
        raise EkrError("checksum mismatch: the file is corrupt")
    if not (tensors_offset == HEADER_BYTES
            and ops_offset == tensors_offset + TENSOR_BYTES * n_tensors
            and ops_offset + OP_BYTES * n_ops <= data_offset <= size
            and data_offset + data_bytes == size
            and graph_input < n_tensors and graph_output < n_tensors):
        raise EkrError("section offsets or tensor ids out of range")
    names = {code: name for name, code in OPS.items()}
    ops: dict[str, int] = {}
    for i in range(n_ops):
        (kind,) = struct.unpack_from("<I", data, ops_offset + OP_BYTES * i)
        ops[names.get(kind, f"unknown#{kind}")] = ops.get(names.get(kind, f"unknown#{kind}"),
                                                          0) + 1

    def shape(t: int) -> list[int]:
        rank = data[tensors_offset + TENSOR_BYTES * t + 1]
        dims = struct.unpack_from("<6i", data, tensors_offset + TENSOR_BYTES * t + 4)
        return [int(d) for d in dims[:min(rank, MAX_RANK)]]

    return {"version": version, "size_bytes": size, "tensors": n_tensors, "n_ops": n_ops,
            "ops": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
            "constant_bytes": data_bytes, "arena_bytes": arena, "arena_lower_bound": lower,
            "input_shape": shape(graph_input), "output_shape": shape(graph_output)}
