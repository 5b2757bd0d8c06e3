"""`--native`: LiteRT's own benchmark tool (ai-edge-litert ships its Python mirror) driven
instead of the agent, its report parsed into the same schema."""

from pathlib import Path

import ai_edge_litert
import pytest

from edgekit.bench.collectors import BenchConfig
from edgekit.bench.native import driver_for
from edgekit.bench.run import run_bench
from edgekit.errors import UsageError
from edgekit.pipeline import ExportRequest, export_model
from tests.conftest import TINY

TOOL = Path(ai_edge_litert.__file__).parent / "tools" / "benchmark_litert_model.py"
CFG = BenchConfig(warmup=3, runs=25, timeout=300, retries=0)


@pytest.fixture(scope="module")
def tiny_tflite(tmp_path_factory):
    (o,) = export_model(ExportRequest(model=TINY, formats=("tflite",),
                                      out=tmp_path_factory.mktemp("native")))
    return o.artifact.path


def test_native_litert_tool_locally(tiny_tflite):
    assert TOOL.exists()
    (row,) = run_bench([tiny_tflite], cfg=CFG, native=str(TOOL))
    assert row["status"] == "ok" and row["iterations"] == 25
    assert 0 < row["min_ms"] <= row["median_ms"] <= row["max_ms"]
    assert row["init_ms"] > 0 and row["runtime"] == "litert"
    assert row["validated"] is None and row["samples_ms"] == [] and row["p90_ms"] is None
    assert "BENCHMARK RESULTS" in row["native"]["report"]


def test_native_tool_failure_is_a_failure_record(tiny_tflite, tmp_path):
    broken = tmp_path / "benchmark_litert_model.py"
    broken.write_text("import sys\nprint('starting')\nsys.exit(3)\n")
    (row,) = run_bench([tiny_tflite], cfg=CFG, native=str(broken))
    assert row["status"] == "failed" and "median_ms" not in row
    silent = tmp_path / "x" / "benchmark_litert_model.py"
    silent.parent.mkdir()
    silent.write_text("print('no results here')\n")
    (row,) = run_bench([tiny_tflite], cfg=CFG, native=str(silent))
    assert row["status"] == "failed" and "no BENCHMARK RESULTS" in row["error"]


def test_unknown_native_tool_is_refused():
    with pytest.raises(UsageError, match="no parser for native tool"):
        driver_for("/opt/bin/mystery_bench")
