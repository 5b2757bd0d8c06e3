"""Flatbuffer rewrites of a full-integer .tflite (ai_edge_litert's flatbuffer_utils object API).

- `float_io`: float32 model inputs/outputs around an int8 graph (QUANTIZE / DEQUANTIZE in the
  file, with the file's own scale and zero point).
- `float_islands`: an int8 op that XNNPACK has no int8 kernel for (GELU, HARD_SWISH, a
  BATCH_MATMUL of two activations, …) runs on TFLite's reference interpreter, outside the
  delegate, and splits the delegated graph around it. Rewritten as DEQUANTIZE → float op →
  QUANTIZE it stays inside the delegate. Measured here: LeViT-128S int8 with HARD_SWISH,
  BATCH_MATMUL and STRIDED_SLICE left out ran slower than its fp32 file (7.8 vs 5.8 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


class _Model:
    """A loaded flatbuffer model (subgraph 0) with the helpers the rewrites share."""

    def __init__(self, path: Path) -> None:
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.tools import flatbuffer_utils as fbu

        self.schema, self.fbu = schema, fbu
        self.model = fbu.read_model(str(path))
        self.sg = self.model.subgraphs[0]

    def write(self, path: Path) -> None:
        self.fbu.write_model(self.model, str(path))

    def opcode(self, builtin: int) -> int:
        for i, oc in enumerate(self.model.operatorCodes):
            if self.fbu.get_builtin_code_from_operator_code(oc) == builtin:
                return i
        oc = self.schema.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = builtin, min(builtin, 127), 1
        self.model.operatorCodes.append(oc)
        return len(self.model.operatorCodes) - 1

    def builtin_of(self, op: Any) -> int:
        return int(self.fbu.get_builtin_code_from_operator_code(
            self.model.operatorCodes[op.opcodeIndex]))

    def float_tensor(self, like: int, name: str) -> int:
        """A new float32 activation tensor with the shape of tensor `like`."""
        old = self.sg.tensors[like]
        new = self.schema.TensorT()
        new.shape, new.shapeSignature = old.shape, old.shapeSignature
        new.type, new.name = self.schema.TensorType.FLOAT32, name
        self.model.buffers.append(self.schema.BufferT())
        new.buffer = len(self.model.buffers) - 1
        self.sg.tensors.append(new)
        return len(self.sg.tensors) - 1

    def name(self, index: int) -> str:
        raw = self.sg.tensors[index].name
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    def is_constant(self, index: int) -> bool:
        buf = self.model.buffers[self.sg.tensors[index].buffer]
        return buf.data is not None and len(buf.data) > 0 or bool(getattr(buf, "size", 0))

    def op(self, builtin: int, inputs: list[int], outputs: list[int]) -> Any:
        op = self.schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = self.opcode(builtin), inputs, outputs
        return op


def float_io(path: Path) -> list[str]:
    """Give a full-integer .tflite float32 inputs/outputs: a QUANTIZE op in front of every int8
    input and a DEQUANTIZE op after every int8 output, with the file's own scale/zero-point.

    litert-torch's PT2E conversion always yields int8 I/O; apps that feed float (and the
    default `--quant int8` contract) need the boundary ops inside the file. Returns the tensors
    rewritten."""
    m = _Model(path)
    sg, ops, int8 = m.sg, m.schema.BuiltinOperator, m.schema.TensorType.INT8

    def twin(index: int) -> int:
        new = m.float_tensor(index, m.name(index))
        sg.tensors[index].name = m.name(index) + "_int8"
        return new

    def retarget(signature_io: list[Any], old: int, new: int) -> None:
        for item in signature_io or []:
            if item.tensorIndex == old:
                item.tensorIndex = new

    rewritten = []
    sigs = m.model.signatureDefs or []
    for pos, index in enumerate(list(sg.inputs)):
        if sg.tensors[index].type != int8:
            continue
        new = twin(index)
        sg.operators.insert(0, m.op(ops.QUANTIZE, [new], [index]))
        sg.inputs[pos] = new
        for sig in sigs:
            retarget(sig.inputs, index, new)
        rewritten.append(f"input {pos}")
    for pos, index in enumerate(list(sg.outputs)):
        if sg.tensors[index].type != int8:
            continue
        new = twin(index)
        sg.operators.append(m.op(ops.DEQUANTIZE, [index], [new]))
        sg.outputs[pos] = new
        for sig in sigs:
            retarget(sig.outputs, index, new)
        rewritten.append(f"output {pos}")
    if rewritten:
        m.write(path)
    return rewritten


def _islands(path: Path, op_indices: set[int], types: set[str]) -> dict[str, int]:
    """Rewrite the listed int8 ops of the given types as float islands; {op name: count}.
    Ops with an int8 constant input (a quantized clamp bound…) are left alone."""
    m = _Model(path)
    sg, ops, int8 = m.sg, m.schema.BuiltinOperator, m.schema.TensorType.INT8
    names = {v: k for k, v in vars(ops).items() if not k.startswith("_")}
    dequantized: dict[int, int] = {}  # int8 tensor -> its float twin (shared by consumers)
    done: dict[str, int] = {}
    new_ops: list[Any] = []
    for position, op in enumerate(sg.operators):
        name = names.get(m.builtin_of(op), "?")
        inputs = [i for i in op.inputs if i >= 0]
        activations = [i for i in inputs if not m.is_constant(i)]
        if (position not in op_indices or name not in types or not activations
                or any(sg.tensors[i].type != int8 for i in [*activations, *op.outputs])
                or any(sg.tensors[i].type == int8 for i in inputs if m.is_constant(i))):
            new_ops.append(op)
            continue
        for i in activations:
            if i not in dequantized:
                dequantized[i] = m.float_tensor(i, m.name(i) + "_f32")
                new_ops.append(m.op(ops.DEQUANTIZE, [i], [dequantized[i]]))
        op.inputs = [dequantized.get(i, i) for i in op.inputs]
        outputs = list(op.outputs)
        op.outputs = [m.float_tensor(o, m.name(o) + "_f32") for o in outputs]
        new_ops.append(op)
        new_ops.extend(m.op(ops.QUANTIZE, [f], [o]) for f, o in zip(op.outputs, outputs,
                                                                     strict=True))
        done[name] = done.get(name, 0) + 1
    sg.operators = new_ops
    if done:
        m.write(path)
    return done


def float_islands(path: Path, undelegated: Callable[[Path], list[tuple[int, str]]]
                  ) -> dict[str, int]:
    """Int8 ops the delegate leaves out become float islands the delegate takes.

    Op types are tried one at a time: a type is kept only if the rewritten file loads and the
    delegate then takes every rewritten op of it (some ops are not delegated in float either).
    `undelegated(path)` lists (operator index, op name) outside the delegate. Returns
    {op name: rewritten count}."""
    original = path.read_bytes()
    left = undelegated(path)
    indices = {i for i, _ in left}
    accepted: set[str] = set()
    for candidate in sorted({name for _, name in left}):
        path.write_bytes(original)
        done = _islands(path, indices, accepted | {candidate})
        try:
            still = {name for _, name in undelegated(path)}
        except Exception:  # noqa: BLE001 - the runtime refused the rewritten graph
            continue
        if candidate in done and candidate not in still:
            accepted.add(candidate)
    path.write_bytes(original)
    return _islands(path, indices, accepted) if accepted else {}
