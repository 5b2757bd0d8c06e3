"""The device agent run locally (same code path as ssh/adb): schema, phases, gates."""

import json
import shutil

import pytest

from edgekit.bench.agent import percentile, stats
from edgekit.bench.collectors import BenchConfig, parse_agent_output
from edgekit.bench.run import run_bench
from edgekit.errors import UsageError
from edgekit.pipeline import ExportRequest, export_model
from tests.conftest import TINY

FAST = BenchConfig(warmup=3, warmup_seconds=0.05, runs=40, min_seconds=0.2, rounds=4,
                   timeout=300, retries=0)
SCHEMA = ("median_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "cv", "min_ms", "max_ms",
          "samples_ms", "init_ms", "first_ms", "warmup_ms", "peak_rss_mb", "runtime", "threads",
          "validated", "stable", "plausible", "fingerprint", "iterations")


@pytest.fixture(scope="module")
def tiny_three(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    outcomes = export_model(ExportRequest(model=TINY, formats=("onnx", "tflite", "executorch"),
                                          out=out))
    return {o.artifact.manifest.format: o.artifact.path for o in outcomes}


def test_stats_and_percentiles():
    xs = [1.0, 2.0, 3.0, 4.0, 100.0]
    s = stats(xs)
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["max_ms"] == 100.0
    assert percentile(sorted(xs), 90) == pytest.approx(61.6)
    assert s["cv"] > 1 and s["iterations"] == 5


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "executorch"])
def test_schema_per_runtime(tiny_three, fmt):
    (row,) = run_bench([tiny_three[fmt]], cfg=FAST)
    for key in SCHEMA:
        assert key in row, key
    assert row["status"] == "ok" and row["validated"] is True
    assert len(row["samples_ms"]) == row["iterations"] >= 40
    assert row["config"]["switch_pause_s"] == 0  # one target: nothing to switch from
    assert len(row["warmup_ms"]) >= 3 and row["init_ms"] > 0 and row["first_ms"] > 0
    assert row["min_ms"] <= row["median_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"]
    fp = row["fingerprint"]
    assert fp["cores"] >= 1 and fp["artifact_sha256"] and fp["edgekit_version"]
    assert row["plausibility"]["peak_gflops"] > 0 and row["plausibility"]["flops"] > 0


def test_compare_interleaves_and_reports_ratios(tiny_three):
    rows = run_bench([tiny_three["onnx"], tiny_three["tflite"]], cfg=FAST, compare=True)
    assert [r["format"] for r in rows] == ["onnx", "tflite"]
    assert rows[0]["ratio_vs_first"] == 1.0 and rows[1]["ratio_vs_first"] > 0
    assert all(r["config"]["interleaved"] for r in rows)
    # spinning worker threads of one runtime must not eat the next target's cores
    assert all(r["config"]["switch_pause_s"] > 0 for r in rows)
    assert rows[0]["iterations"] == rows[1]["iterations"]


def test_implausibly_fast_result_is_flagged(tiny_three, tmp_path):
    fake = tmp_path / "fake.fp32.onnx"
    shutil.copytree(tiny_three["onnx"], fake)
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["flops"] = 10**15  # claims a petaflop of work: any latency here is impossible
    (fake / "manifest.json").write_text(json.dumps(manifest))
    (row,) = run_bench([fake], cfg=FAST)
    assert row["plausible"] is False and "measurement bug" in row["plausibility"]["reason"]


def test_agent_output_parsing_keeps_partials_and_rejects_missing_results():
    out = "\n".join(['EDGEKIT-PARTIAL {"artifact": "a", "round": 0, "samples_ms": [1.0, 2.0]}',
                     'EDGEKIT-PARTIAL {"artifact": "a", "round": 1, "samples_ms": [3.0]}'])
    results, partial = parse_agent_output(out)
    assert results is None and partial == {"a": [1.0, 2.0, 3.0]}


def test_coreml_cannot_be_benchmarked_here(tmp_path):
    (o,) = export_model(ExportRequest(model=TINY, formats=("coreml",), out=tmp_path))
    with pytest.raises(UsageError, match="cannot be benchmarked"):
        run_bench([o.artifact.path], cfg=FAST)
