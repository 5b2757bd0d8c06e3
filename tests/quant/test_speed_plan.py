"""`--int8-plan fast` (default) vs `all`: ops whose int8 kernel is slower than fp32 in the
target runtime stay float, and the manifest says which and why."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.artifact import Artifact
from edgekit.quant.config import QuantConfig
from tests.conftest import TINY_HYBRID


def _export(out: Path, plan: str, formats: tuple[str, ...], isa: str = "x86_64"
            ) -> dict[str, Artifact]:
    from edgekit.pipeline import ExportRequest, export_model

    outcomes = export_model(ExportRequest(
        model=TINY_HYBRID, formats=formats, quant="int8", out=out,
        quant_config=QuantConfig(calib="photos", calib_n=16, keep_float="none", plan=plan,
                                 isa=isa)))
    return {o.artifact.manifest.format: o.artifact for o in outcomes}


@pytest.fixture(scope="module")
def fast(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    return _export(tmp_path_factory.mktemp("fast"), "fast", ("onnx", "tflite", "executorch"))


@pytest.fixture(scope="module")
def quantize_all(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Artifact]:
    return _export(tmp_path_factory.mktemp("all"), "all", ("onnx", "tflite"))


def _dequantized_inputs(path: Path) -> dict[str, list[bool]]:
    """Per node: which inputs come from a DequantizeLinear."""
    graph = onnx.load(str(path)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    return {n.name: [producer.get(i) == "DequantizeLinear" for i in n.input]
            for n in graph.node}


def _group(node: onnx.NodeProto) -> int:
    return next((a.i for a in node.attribute if a.name == "group"), 1)


def test_every_fast_artifact_validates_and_names_its_float_ops(fast):
    for fmt, art in fast.items():
        m = art.manifest
        assert m.validation.validated is True, (fmt, m.validation)
        q = m.exporter["quantization"]
        assert q["int8_plan"] == "fast" and q["int8_isa"] == "x86_64", fmt
        # ExecuTorch keeps int8 depthwise (a float one breaks lowering; quant/targets.py)
        assert ("dwconv" in q["float_for_speed"]) == (fmt != "executorch"), fmt
        assert all(isinstance(r, str) and len(r) > 20 for r in q["float_for_speed"].values())
        assert not set(q["float_for_speed"]) & set(q["int8_for_speed"])


def test_every_engine_decides_every_kind_on_every_isa_with_evidence():
    from edgekit.quant.config import INT8_ISAS
    from edgekit.quant.targets import QUANTIZERS

    for fmt in QUANTIZERS.list():
        table = QUANTIZERS.get(fmt).int8_speed
        if not table:
            continue
        assert set(table) == set(INT8_ISAS), fmt
        kinds = {isa: set(calls) for isa, calls in table.items()}
        assert len({frozenset(k) for k in kinds.values()}) == 1, (fmt, kinds)  # same kinds
        for isa, calls in table.items():
            for kind, call in calls.items():
                assert len(call.evidence) > 40, (fmt, isa, kind)
                if isa == "arm64":  # decided from the emulated device's instruction counts
                    assert "cortex-a76" in call.evidence and "cortex-a53" in call.evidence


def test_arm64_fast_plan_follows_the_counted_table(tmp_path):
    """The default ISA is arm64, where ONNX Runtime's int8 depthwise and low-intensity ops
    counted cheaper than float (bench/results/arm_int8_plan.json): they stay int8, and the
    manifest says which evidence decided it."""
    from edgekit.quant.targets import ORT_INT8_SPEED, speed_plan

    art = _export(tmp_path, "fast", ("onnx",), isa="arm64")["onnx"]
    q = art.manifest.exporter["quantization"]
    floated, kept = speed_plan(ORT_INT8_SPEED, QuantConfig(isa="arm64"))
    assert q["int8_isa"] == "arm64" and q["int8_plan"] == "fast"
    assert (q["float_for_speed"], q["int8_for_speed"]) == (floated, kept)
    assert "dwconv" in kept and "dwconv" not in floated
    graph = onnx.load(str(art.model_path)).graph
    deq = _dequantized_inputs(art.model_path)
    dw = [n for n in graph.node if n.op_type == "Conv" and _group(n) > 1]
    assert dw and all(all(deq[n.name][:2]) for n in dw)
    assert art.manifest.validation.validated is True


def test_onnx_fast_keeps_depthwise_and_activation_matmuls_float(fast, quantize_all):
    graph = onnx.load(str(fast["onnx"].model_path)).graph
    deq = _dequantized_inputs(fast["onnx"].model_path)
    dw = [n for n in graph.node if n.op_type == "Conv" and _group(n) > 1]
    linears = [n for n in graph.node if n.op_type in ("MatMul", "Gemm")]
    assert dw and not any(any(deq[n.name]) for n in dw)
    assert any(all(deq[n.name][:2]) for n in linears)  # the wide linears are int8
    activation_mm = [n for n in graph.node if n.op_type == "MatMul"
                     and n.input[1] not in {i.name for i in graph.initializer}]
    assert activation_mm and not any(any(deq[n.name]) for n in activation_mm)
    q = fast["onnx"].manifest.exporter["quantization"]
    assert set(q["float_sites"]) >= {n.name for n in dw}
    # --int8-plan all quantizes the depthwise conv too
    g_all = onnx.load(str(quantize_all["onnx"].model_path)).graph
    deq_all = _dequantized_inputs(quantize_all["onnx"].model_path)
    assert any(all(deq_all[n.name][:2]) for n in g_all.node
               if n.op_type == "Conv" and _group(n) > 1)
    assert quantize_all["onnx"].manifest.exporter["quantization"]["float_for_speed"] == {}


def test_tflite_fast_runs_every_op_in_xnnpack(fast, quantize_all):
    ex = fast["tflite"].manifest.exporter
    islands = ex["float_islands"]
    assert islands.get("HARD_SWISH", 0) + islands.get("BATCH_MATMUL", 0) > 0, islands
    assert not set(islands) & set(ex["delegation"]["not_delegated"])
    assert ex["delegation"]["share"] > quantize_all["tflite"].manifest.exporter[
        "delegation"]["share"]
    # with --int8-plan all the same int8 ops stay on the reference interpreter
    left = quantize_all["tflite"].manifest.exporter["delegation"]["not_delegated"]
    assert set(islands) <= set(left)
    assert quantize_all["tflite"].manifest.exporter["float_islands"] == {}


def test_tflite_islands_are_dequantize_op_quantize(fast):
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    model = fbu.read_model(str(fast["tflite"].model_path))
    sg = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    code = [names[int(fbu.get_builtin_code_from_operator_code(oc))]
            for oc in model.operatorCodes]
    producer = {o: code[op.opcodeIndex] for op in sg.operators for o in op.outputs}
    float32 = schema.TensorType.FLOAT32
    checked = Counter()
    for op in sg.operators:
        name = code[op.opcodeIndex]
        if name in ("HARD_SWISH", "BATCH_MATMUL") and sg.tensors[op.outputs[0]].type == float32:
            assert all(producer.get(i) == "DEQUANTIZE" for i in op.inputs if i >= 0)
            checked[name] += 1
    islands = fast["tflite"].manifest.exporter["float_islands"]
    assert islands and all(checked[k] >= n for k, n in islands.items()), (checked, islands)


def test_speed_plan_keeps_accuracy(fast, quantize_all):
    for fmt in ("onnx", "tflite"):
        a, b = fast[fmt].manifest.validation, quantize_all[fmt].manifest.validation
        assert np.isfinite(a.cosine) and a.cosine >= b.cosine - 0.01, (fmt, a, b)


def test_cli_int8_plan_flag_and_inspect(fast, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import cli

    runner = CliRunner()
    bad = runner.invoke(cli, ["export", TINY_HYBRID, "--quant", "int8", "--int8-plan", "most"])
    assert bad.exit_code == 2 and "--int8-plan" in bad.output
    bad = runner.invoke(cli, ["export", TINY_HYBRID, "--quant", "int8", "--int8-isa", "riscv"])
    assert bad.exit_code == 2 and "--int8-isa" in bad.output
    shown = runner.invoke(cli, ["inspect", str(fast["tflite"].path)])
    assert shown.exit_code == 0, shown.output
    assert "float for speed (--int8-plan fast on x86_64): dwconv" in shown.output
    assert "float islands in the delegate" in shown.output
    res = runner.invoke(cli, ["export", TINY_HYBRID, "--to", "onnx", "--quant", "int8",
                              "--calib", "photos", "--calib-n", "8", "--keep-float", "none",
                              "--int8-plan", "all", "--out", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    art = Artifact.open(tmp_path / "tiny_hybrid.int8.onnx")
    q = art.manifest.exporter["quantization"]
    assert q["int8_plan"] == "all" and q["float_for_speed"] == {}
