"""ONNX fp16, weight-only int8 (w8) and int16-activation (w8a16) rewrites, run in ONNX Runtime."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper, numpy_helper

from edgekit.quant import onnx_precision as P
from edgekit.validate import logit_cosine

from .conftest import SMALL


def _export(name: str, out: Path, dynamic_batch: int | None = None) -> tuple[Path, dict]:
    import torch
    from edgekit.exporters.onnx import OnnxExporter
    from edgekit.models.source import load_source

    from edgekit.exporter import ExportOptions

    src = load_source(name)
    example = torch.randn(2 if dynamic_batch else 1, *src.data_config["input_size"])
    OnnxExporter().export(src.model, example, ExportOptions(dynamic_batch=dynamic_batch), out)
    return out / "model.onnx", src.data_config


@pytest.fixture(scope="module")
def levit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, np.ndarray]:
    """fmnist_levit (trained) fp32 ONNX and held-out Fashion-MNIST test images."""
    from edgekit.data import golden_inputs

    path, cfg = _export(SMALL, tmp_path_factory.mktemp("levit"))
    return path, cfg, golden_inputs(cfg, 8, seed=0)


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny_hybrid with a dynamic batch: conv, depthwise conv, hardswish, attention."""
    return _export("tests.tiny_models:tiny_hybrid", tmp_path_factory.mktemp("hybrid"),
                   dynamic_batch=4)[0]


def _copy(src: Path, tmp: Path, name: str) -> Path:
    dst = tmp / name
    shutil.copy(src, dst)
    return dst


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def _min_cosine(path: Path, reference: Path, x: np.ndarray) -> float:
    return min(logit_cosine(a, b) for a, b in zip(_run(path, x), _run(reference, x),
                                                    strict=True))


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {v.name: v.type.tensor_type.elem_type
           for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}
    out.update({i.name: i.data_type for i in model.graph.initializer})
    return out


def _io_types(model: onnx.ModelProto) -> set[int]:
    return {v.type.tensor_type.elem_type for v in (*model.graph.input, *model.graph.output)}


# ------------------------------------------------------------------------------------- fp16

def test_fp16_computes_fp16_where_ort_has_kernels_and_fp32_elsewhere(levit, tmp_path):
    src, _, x = levit
    path = _copy(src, tmp_path, "fp16.onnx")
    details = P.convert_fp16(path)  # arm64: ARMv8.2 FP16 kernel table
    json.dumps(details)
    model = onnx.load(str(path))
    types = _types(model)
    assert _io_types(model) == {TP.FLOAT}
    by_op: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        by_op.setdefault(n.op_type, []).append(n)
    for op in ("Conv", "MatMul", "Gemm", "Add"):  # fp16 kernels on ARMv8.2: fp16 in and out
        assert by_op[op] and all(types[n.output[0]] == TP.FLOAT16 for n in by_op[op]), op
    for op in ("BatchNormalization", "HardSwish", "Softmax", "ReduceMean"):  # none: fp32
        assert by_op[op] and all(types[n.input[0]] == types[n.output[0]] == TP.FLOAT
                                 for n in by_op[op]), op
        assert "no fp16 kernel" in details["fp32_ops"][op]["reason"]
    weights = [n.input[1] for op in ("Conv", "MatMul", "Gemm") for n in by_op[op]
               if n.input[1] in {i.name for i in model.graph.initializer}]
    assert weights and all(types[w] == TP.FLOAT16 for w in weights)
    assert details["fp16_ops"]["MatMul"] == 32 and details["fp32_ops"]["HardSwish"]["count"] == 13
    assert details["bytes_after"] < 0.65 * details["bytes_before"]
    assert _min_cosine(path, src, x) >= 0.999
    here = details["ort_on_this_host"]  # not silent: what ORT on this host computes in fp32
    if platform.machine() == "x86_64":
        assert here["inserted_casts"] > 0 and here["fp16_ops_computed_fp32_here"]["MatMul"] > 0


def test_fp16_x86_table_leaves_ort_no_cast_to_insert(hybrid, tmp_path):
    """x86-64 has no fp16 arithmetic kernel in ORT: weights are stored fp16 (behind Casts ORT
    folds at load), compute stays fp32, ORT inserts nothing; the dynamic batch survives."""
    path = _copy(hybrid, tmp_path, "fp16.onnx")
    details = P.convert_fp16(path, isa="x86_64")
    model = onnx.load(str(path))
    assert details["fp16_ops"] == {} and details["weights_stored_fp16_for_fp32_ops"] > 0
    producer = {o: n for n in model.graph.node for o in n.output}
    weights = [producer.get(n.input[1]) for n in model.graph.node if n.op_type == "Conv"]
    assert len(weights) == 3  # stem conv (864 weights) stays fp32; dw (1568) and pw fp16
    casts = [c for c in weights if c is not None]
    assert len(casts) == 2 and all(c.op_type == "Cast" and _types(model)[c.input[0]]
                                   == TP.FLOAT16 for c in casts)
    if platform.machine() == "x86_64":
        assert details["ort_on_this_host"]["inserted_casts"] == 0
    x = np.random.default_rng(0).standard_normal((3, 3, 32, 32), dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    batch = sess.run(None, {"input": x})[0]  # batch 3 in one run
    assert batch.shape[0] == 3
    assert min(logit_cosine(a, b) for a, b in zip(batch, _run(hybrid, x), strict=True)) >= 0.999


def _one_op_fp16(op: str) -> onnx.ModelProto:
    x4 = [1, 8, 6, 6]
    rng = np.random.default_rng(0)

    def const(*shape: int) -> np.ndarray:
        return (rng.random(shape) + 0.5).astype(np.float16)

    cases: dict[str, tuple[list, dict]] = {
        "Conv": ([("x", x4), ("w", const(8, 8, 3, 3))], {"pads": [1, 1, 1, 1]}),
        "MatMul": ([("x", [2, 5, 8]), ("w", const(8, 4))], {}),
        "Gemm": ([("x", [2, 8]), ("w", const(4, 8))], {"transB": 1}),
        "Add": ([("a", x4), ("b", x4)], {}), "Mul": ([("a", x4), ("b", x4)], {}),
        "Relu": ([("x", x4)], {}), "HardSwish": ([("x", x4)], {}), "Sigmoid": ([("x", x4)], {}),
        "Softmax": ([("x", x4)], {}), "Gelu": ([("x", x4)], {}),
        "GlobalAveragePool": ([("x", x4)], {}),
        "BatchNormalization": ([("x", x4), *[(n, const(8)) for n in "sbmv"]], {}),
        "LayerNormalization": ([("x", x4), ("s", const(6)), ("b", const(6))], {}),
        "ReduceMean": ([("x", x4), ("ax", np.array([-1], np.int64))], {}),
        "Reshape": ([("x", x4), ("s", np.array([1, -1], np.int64))], {}),
        "Transpose": ([("x", x4)], {"perm": [0, 2, 3, 1]}),
        "Concat": ([("a", x4), ("b", x4)], {"axis": 1}),
    }
    inputs, attrs = cases[op]
    graph_in = [helper.make_tensor_value_info(n, TP.FLOAT16, v) for n, v in inputs
                if not isinstance(v, np.ndarray)]
    inits = [numpy_helper.from_array(v, n) for n, v in inputs if isinstance(v, np.ndarray)]
    node = helper.make_node(op, [n for n, _ in inputs], ["y"], **attrs)
    graph = helper.make_graph([node], op, graph_in,
                              [helper.make_tensor_value_info("y", TP.FLOAT16, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=10)


PROBED = ("Conv", "MatMul", "Gemm", "Add", "Mul", "Relu", "HardSwish", "Sigmoid", "Softmax",
          "Gelu", "GlobalAveragePool", "BatchNormalization", "LayerNormalization", "ReduceMean",
          "Reshape", "Transpose", "Concat")


@pytest.mark.skipif(platform.machine() != "x86_64",
                    reason="probes the installed onnxruntime's x86_64 fp16 kernels: needs an "
                           "x86_64 host")
def test_fp16_kernel_table_is_what_this_onnxruntime_does():
    """The measurement behind FP16_COMPUTE_OPS / ORT_CPU_NO_FP16_OPS, redone for the installed
    onnxruntime: a one-node fp16 model gets Casts (InsertCastTransformer) around it exactly
    when the table says the x86-64 CPU EP has no fp16 kernel for the op."""
    casts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for op in PROBED:
            opts = ort.SessionOptions()
            opts.log_severity_level = 3
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.optimized_model_filepath = str(Path(tmp) / f"{op}.onnx")
            ort.InferenceSession(_one_op_fp16(op).SerializeToString(), opts,
                                 providers=["CPUExecutionProvider"])
            saved = onnx.load(opts.optimized_model_filepath)
            casts[op] = any(n.op_type == "Cast" for n in saved.graph.node)
    expected = {op: op in P.ORT_CPU_NO_FP16_OPS["x86_64"] for op in PROBED}
    assert casts == expected
    assert not any(casts[op] for op in PROBED if op in P.FP16_FOLLOW_OPS)


def test_fp16_arm64_keeps_the_kernels_that_fail_there_fp32(tmp_path):
    """ORT 1.31.1 on ARM64 has fp16 kernels for grouped Conv and AveragePool, but computes
    grouped (not depthwise) convolutions wrong and cannot load an opset-19+ fp16 AveragePool
    at its default optimization level: those stay fp32, dense and depthwise Convs go fp16."""
    rng = np.random.default_rng(0)

    def w(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    weights = {"dense": w(16, 3, 3, 3), "dw": w(16, 1, 3, 3), "grouped": w(16, 4, 3, 3),
               "mult": w(32, 1, 3, 3)}
    nodes = [helper.make_node("Conv", ["input", "dense"], ["a"], pads=[1] * 4, name="dense"),
             helper.make_node("Conv", ["a", "dw"], ["b"], pads=[1] * 4, group=16, name="dw"),
             helper.make_node("Conv", ["b", "grouped"], ["c"], pads=[1] * 4, group=4,
                              name="grouped"),
             helper.make_node("Conv", ["c", "mult"], ["d"], pads=[1] * 4, group=16,
                              name="mult"),
             helper.make_node("AveragePool", ["d"], ["e"], kernel_shape=[3, 3], pads=[1] * 4,
                              name="pool"),
             helper.make_node("GlobalAveragePool", ["e"], ["f"], name="gap"),
             helper.make_node("Flatten", ["f"], ["logits"], name="flat")]
    graph = helper.make_graph(
        nodes, "convs", [helper.make_tensor_value_info("input", TP.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TP.FLOAT, [1, 32])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()])
    path = tmp_path / "convs.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)],
                                ir_version=10), str(path))
    reference = _copy(path, tmp_path, "ref.onnx")
    details = P.convert_fp16(path)
    types = _types(onnx.load(str(path)))
    precision = {n.name: types[n.output[0]] for n in onnx.load(str(path)).graph.node}
    assert precision["dense"] == precision["dw"] == precision["gap"] == TP.FLOAT16
    assert precision["grouped"] == precision["mult"] == precision["pool"] == TP.FLOAT
    assert details["fp32_ops"]["Conv (grouped)"]["count"] == 2
    assert "wrong results" in details["fp32_ops"]["Conv (grouped)"]["reason"]
    assert "fails to load" in details["fp32_ops"]["AveragePool"]["reason"]
    x = np.random.default_rng(1).standard_normal((2, 3, 8, 8), dtype=np.float32)
    assert _min_cosine(path, reference, x) >= 0.999


def test_fp16_unknown_isa_is_refused(hybrid, tmp_path):
    from edgekit.errors import UsageError

    with pytest.raises(UsageError):
        P.convert_fp16(_copy(hybrid, tmp_path, "m.onnx"), isa="riscv")


# --------------------------------------------------------------------------------------- w8

def test_w8_int8_weights_per_output_channel_float_activations(levit, tmp_path):
    src, _, x = levit
    path = _copy(src, tmp_path, "w8.onnx")
    details = P.quantize_weights_int8(path)
    json.dumps(details)
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] == 0 and ops["DequantizeLinear"] == sum(
        details["quantized_weights"].values())
    assert details["quantized_weights"] == {"MatMul": 22, "Conv": 4, "Gemm": 1}
    assert _io_types(model) == {TP.FLOAT}
    for n in model.graph.node:
        if n.op_type not in ("Conv", "Gemm", "MatMul") or n.input[1] not in producer:
            continue
        dq = producer[n.input[1]]
        if dq.op_type != "DequantizeLinear":
            continue  # MatMul of two activations
        q, scale = inits[dq.input[0]], inits[dq.input[1]]
        axis = next(a.i for a in dq.attribute if a.name == "axis")
        trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
        want = {"Conv": 0, "Gemm": 0 if trans_b else 1, "MatMul": len(q.dims) - 1}[n.op_type]
        assert q.data_type == TP.INT8 and axis == want and scale.dims == [q.dims[axis]]
        assert inits[dq.input[2]].data_type == TP.INT8
        assert not np.any(numpy_helper.to_array(inits[dq.input[2]]))  # symmetric
    assert details["weight_bytes_after"] < 0.26 * details["weight_bytes_before"]
    assert details["bytes_after"] < 0.45 * details["bytes_before"]
    assert _min_cosine(path, src, x) >= 0.999


def test_w8_axes_follow_each_ops_weight_layout(tmp_path):
    """Gemm with and without transB, MatMul [K, N] and Conv: the scales run over output
    channels, so each output channel's error is bounded by its own scale."""
    rng = np.random.default_rng(0)
    # output channels of very different magnitude: a per-tensor scale would flatten the small
    w_conv = rng.standard_normal((4, 3, 3, 3)).astype(np.float32) * \
        np.array([1e-3, 1, 10, 100], np.float32)[:, None, None, None]
    w_gemm_t = rng.standard_normal((6, 16)).astype(np.float32) * \
        np.logspace(-3, 2, 6, dtype=np.float32)[:, None]  # [N, K]
    w_gemm = rng.standard_normal((6, 5)).astype(np.float32) * \
        np.logspace(-3, 2, 5, dtype=np.float32)[None, :]  # [K, N]
    w_mm = rng.standard_normal((5, 7)).astype(np.float32) * \
        np.logspace(-3, 2, 7, dtype=np.float32)[None, :]  # [K, N]
    nodes = [helper.make_node("Conv", ["input", "w_conv"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Concat", ["f", "f", "f", "f"], ["f16"], axis=1),
             helper.make_node("Gemm", ["f16", "w_gemm_t"], ["g1"], transB=1),
             helper.make_node("Gemm", ["g1", "w_gemm"], ["g2"]),
             helper.make_node("MatMul", ["g2", "w_mm"], ["logits"])]
    graph = helper.make_graph(
        nodes, "axes", [helper.make_tensor_value_info("input", TP.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TP.FLOAT, [1, 7])],
        [numpy_helper.from_array(w, n) for n, w in (("w_conv", w_conv), ("w_gemm_t", w_gemm_t),
                                                    ("w_gemm", w_gemm), ("w_mm", w_mm))])
    path = tmp_path / "axes.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)],
                                ir_version=10), str(path))
    reference = tmp_path / "ref.onnx"
    shutil.copy(path, reference)
    details = P.quantize_weights_int8(path)
    assert details["quantized_weights"] == {"Conv": 1, "Gemm": 2, "MatMul": 1}
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for name, w, axis in (("w_conv", w_conv, 0), ("w_gemm_t", w_gemm_t, 0),
                          ("w_gemm", w_gemm, 1), ("w_mm", w_mm, 1)):
        dq = next(n for n in model.graph.node if n.output[0] == name)
        assert next(a.i for a in dq.attribute if a.name == "axis") == axis
        scale = inits[f"{name}_scale"]
        shape = [1] * w.ndim
        shape[axis] = -1
        restored = inits[f"{name}_quantized"].astype(np.float32) * scale.reshape(shape)
        assert np.all(np.abs(restored - w) <= scale.reshape(shape) / 2 + 1e-12), name
        other = tuple(a for a in range(w.ndim) if a != axis)
        np.testing.assert_allclose(scale, np.abs(w).max(axis=other) / 127, rtol=1e-6)
    x = np.random.default_rng(1).standard_normal((4, 3, 8, 8), dtype=np.float32)
    assert _min_cosine(path, reference, x) >= 0.999


# ------------------------------------------------------------------------------------ w8a16

def test_w8a16_int16_activations_int8_weights_every_op(levit, tmp_path, monkeypatch):
    from edgekit.calibration import calibration_set
    from edgekit.quant import onnx as q
    from edgekit.quant.config import QuantConfig

    monkeypatch.setattr(q, "u8s8_saturates_here", lambda: True)  # u8s8 7-bit: int8 only
    src, cfg, x = levit
    path = _copy(src, tmp_path, "w8a16.onnx")
    cal = calibration_set("fmnist", cfg, 40)
    res = q.quantize_onnx_file(path, "input", type(cal)(cal.name, cal.samples[:32],
                                                        cal.sources[:32]),
                               cal.samples[32:], 1, QuantConfig(keep_float="none"), "w8a16")
    details = res.details()
    json.dumps(details)
    assert details["activation_type"] == "QInt16" and details["reduce_range"] is False
    assert details["calib_method"] == "minmax" and details["op_types"] == "all"
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    nodes = model.graph.node
    qs = [n for n in nodes if n.op_type == "QuantizeLinear"]
    assert qs and all(inits[n.input[2]].data_type == TP.INT16 for n in qs)
    opset = next(o.version for o in model.opset_import if o.domain == "")
    assert opset >= 21 or all(n.domain == "com.microsoft" for n in qs)  # 16-bit Q/DQ
    producer = {o: n for n in nodes for o in n.output}
    for n in nodes:  # every weight int8 per output channel, every activation int16
        if n.op_type in ("Conv", "MatMul", "Gemm", "Softmax", "HardSwish", "Add"):
            assert all(i in producer and producer[i].op_type == "DequantizeLinear"
                       for i in n.input[:1]), n.name
        if n.op_type in ("Conv", "Gemm") or (n.op_type == "MatMul" and
                                              producer[n.input[1]].input[0] in inits):
            w = inits[producer[n.input[1]].input[0]]
            assert w.data_type == TP.INT8, n.name
    assert _io_types(model) == {TP.FLOAT}
    assert res.cosine_all_int8 >= 0.995 and _min_cosine(path, src, x) >= 0.995


def test_mixed_int16_promotes_the_sensitive_sites_instead_of_floating_them(hybrid, tmp_path):
    from edgekit.calibration import CalibrationSet
    from edgekit.quant.config import QuantConfig
    from edgekit.quant.onnx import quantize_onnx_file

    x = np.random.default_rng(0).standard_normal((24, 3, 32, 32), dtype=np.float32)
    config = QuantConfig(keep_float="auto", min_cosine=0.99999)  # forces the search
    out = {}
    for mixed in ("float", "int16"):
        path = _copy(hybrid, tmp_path, f"{mixed}.onnx")
        out[mixed] = (path, quantize_onnx_file(
            path, "input", CalibrationSet("noise", x[:16], ("noise",) * 16), x[16:], 1,
            config, "fused", mixed=mixed))
    (_, flt), (path, mix) = out["float"], out["int16"]
    assert flt.excluded_nodes and not flt.int16_nodes and "mixed" not in flt.details()
    assert mix.int16_nodes and not mix.excluded_nodes
    details = mix.details()
    json.dumps(details)
    assert details["mixed"] == "int16" and details["int16_sites"] == mix.int16_nodes
    assert set(details["int16_reasons"]) == set(mix.int16_nodes)
    assert details["float_sites"] == mix.forced_nodes  # nothing floated by the search
    assert mix.cosine_final > mix.cosine_all_int8
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}

    def activation_type(node: onnx.NodeProto) -> int:
        dq = producer[node.input[0]]
        return inits[dq.input[2]].data_type if len(dq.input) > 2 else inits[dq.input[0]].data_type

    names = {n.name: n for n in model.graph.node}
    for name in mix.int16_nodes:  # int16 activations, int8 weights
        node = names[name]
        assert activation_type(node) == TP.INT16, name
        assert inits[producer[node.input[1]].input[0]].data_type == TP.INT8, name
    others = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")
              and n.name not in mix.int16_nodes and n.input[0] in producer
              and producer[n.input[0]].op_type == "DequantizeLinear"]
    assert others and all(activation_type(n) == TP.UINT8 for n in others)
    x_eval = x[16:]
    assert _min_cosine(path, hybrid, x_eval) >= 0.999
