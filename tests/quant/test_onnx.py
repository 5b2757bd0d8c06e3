"""ONNX Runtime int8: plans, kinds kept float, and the per-node sensitivity fallback."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgekit.calibration import calibration_set
from edgekit.quant.config import QuantConfig
from edgekit.quant.onnx import quantize_onnx_file

from .conftest import SMALL


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    from edgekit.pipeline import ExportRequest, export_model

    (o,) = export_model(ExportRequest(model=SMALL, out=tmp_path_factory.mktemp("fp32")))
    return o.artifact.model_path, o.artifact.manifest.preprocessing


def _quantize(src: Path, tmp: Path, cfg: dict, config: QuantConfig, plan: str = "fused"):
    path = tmp / f"{plan}.onnx"
    shutil.copy(src, path)
    cal = calibration_set("fmnist", cfg, 48)
    res = quantize_onnx_file(path, "input", type(cal)(cal.name, cal.samples[:32],
                                                       cal.sources[:32]),
                             cal.samples[32:], 1, config, plan)
    return path, res


def _ops(path: Path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def test_fused_plan_quantizes_only_fusable_ops_and_ort_defaults_everything(fp32_onnx, tmp_path):
    src, cfg = fp32_onnx
    fused, res = _quantize(src, tmp_path, cfg, QuantConfig(keep_float="none"))
    stock, _ = _quantize(src, tmp_path, cfg, QuantConfig(keep_float="none"), "ort-default")
    assert _ops(stock)["QuantizeLinear"] > _ops(fused)["QuantizeLinear"] > 0
    assert res.details()["activation_type"] == "QUInt8" and res.cosine_all_int8 > 0.99


def test_keep_float_kind_removes_its_qdq(fp32_onnx, tmp_path):
    src, cfg = fp32_onnx
    path, _ = _quantize(src, tmp_path, cfg, QuantConfig(keep_float=("conv",)))
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "Conv":  # no conv reads a dequantized weight or activation
            assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear"
                       for i in n.input), n.name


def test_auto_keeps_the_most_damaging_nodes_float_until_the_budget(fp32_onnx, tmp_path):
    src, cfg = fp32_onnx
    path, res = _quantize(src, tmp_path, cfg, QuantConfig(keep_float="auto",
                                                          min_cosine=0.99999))
    assert res.sensitivity and len(res.sensitivity) == res.sites - len(res.forced_nodes)
    gains = [s["cosine_gain"] for s in res.sensitivity]
    assert gains == sorted(gains, reverse=True)
    assert res.excluded_nodes and res.cosine_final > res.cosine_all_int8
    best = res.sensitivity[0]  # a site is tried in float with its quantized neighbours
    assert best["site"] in res.excluded_nodes and set(best["with"]) <= set(res.excluded_nodes)
    assert len(res.excluded_nodes) <= max(1 + len(best["with"]),
                                          (res.sites - len(res.forced_nodes)) // 4)
    assert set(res.float_reasons) >= set(res.excluded_nodes)
    names = {n.name for n in onnx.load(str(path)).graph.node}
    assert set(res.excluded_nodes) <= names
    assert np.isfinite(res.cosine_final)


def test_reduce_range_only_where_u8s8_kernels_saturate(monkeypatch, tmp_path):
    """7-bit weights only on x86 without VNNI (ORT's VPMADDUBSW path saturates); ARM is exact."""
    import platform

    from edgekit.quant import onnx as q

    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert q.u8s8_saturates_here() is False
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    cpuinfo = tmp_path / "cpuinfo"
    real_path = q.Path

    def fake_path(p, *rest):
        return cpuinfo if str(p) == "/proc/cpuinfo" else real_path(p, *rest)

    monkeypatch.setattr(q, "Path", fake_path)
    cpuinfo.write_text("flags : sse2 avx2 avx512f avx512_vnni\n")
    assert q.u8s8_saturates_here() is False
    cpuinfo.write_text("flags : sse2 avx2\n")
    assert q.u8s8_saturates_here() is True
    details = q.OrtQuantResult("fused", "percentile", reduce_range=True).details()
    assert details["reduce_range"] is True and "7-bit" in details["weight_type"]
