"""ek_bench and `edgekit bench --kernels`: the static aarch64 binary runs every ARM path under
qemu as a correctness smoke test (each path's output equals the scalar path's), the host build
times the host paths in the `edgekit bench` schema, and an int-only artifact's manifest drives
the shapes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgekit import kernels as ek
from edgekit.bench.collectors import BenchConfig
from edgekit.errors import UsageError
from tests.kernels import KERNELS, make_kernels

SHAPES = """# one op per line
s8_gemm_requant m=13 k=40 n=9
s8_dwconv3x3_requant c=3 h=9 w_in=11 stride=2 pad=1
s8_shiftmax rows=5 len=49 x0=-13
s8_shiftgelu count=333
s8_ilayernorm rows=4 c=50
s8_avgpool_requant c=2 h=7 w_in=7 kernel=3 stride=1 pad=1
s8_add_requant count=100
s8_hardswish count=77
"""
FAST = ["--runs", "3", "--warmup-seconds", "0.01", "--min-seconds", "0"]
REPORT_KEYS = {"artifact", "runtime", "runtime_version", "median_ms", "p90_ms", "p99_ms", "cv",
               "iterations", "init_ms", "peak_rss_mb", "validated", "stable", "plausible",
               "samples_ms", "fingerprint", "kernel", "op", "path", "shape"}


@pytest.fixture(scope="module")
def binaries() -> dict[str, Path]:
    proc = make_kernels("bench", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"host": KERNELS / "build/host/ek_bench", "a64": KERNELS / "build/a64/ek_bench"}


@pytest.fixture
def shapes(tmp_path: Path) -> Path:
    (tmp_path / "shapes.txt").write_text(SHAPES)
    return tmp_path / "shapes.txt"


def _rows(cmd: list[str]) -> list[dict]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1000:]
    return json.loads(proc.stdout)


def test_host_rows_follow_the_bench_schema(binaries, shapes):
    rows = _rows([str(binaries["host"]), str(shapes), *FAST])
    x86 = [p for p, isa in (("avx2", "avx2"), ("avx512vnni", "avx512vnni")) if isa in
           ek.cpu_isa()]  # the exact x86 GEMMs this CPU runs
    assert {(r["op"], r["path"]) for r in rows} == {
        (line.split()[0], p) for line in SHAPES.splitlines()[1:] for p in ("scalar", "autovec")
    } | {("s8_gemm_requant", p) for p in x86}
    for r in rows:
        assert REPORT_KEYS <= set(r), REPORT_KEYS - set(r)
        assert r["iterations"] >= 3 and len(r["samples_ms"]) == r["iterations"]
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["max_ms"]
        assert r["validated"] is (None if r["path"] == "scalar" else True), r["kernel"]


@pytest.mark.parametrize("cpu,paths", [("cortex-a53", {"scalar", "autovec", "neon"}),
                                       ("max", {"scalar", "autovec", "neon", "neondot", "i8mm"})])
def test_arm_paths_agree_with_scalar_under_qemu(binaries, shapes, cpu, paths):
    rows = _rows(["qemu-aarch64", "-cpu", cpu, str(binaries["a64"]), str(shapes), *FAST])
    assert {r["path"] for r in rows} == paths
    gemm = {r["path"] for r in rows if r["op"] == "s8_gemm_requant"}
    assert ("neondot" in gemm) == ("i8mm" in gemm) == (cpu == "max")  # a53: not run, no SIGILL
    assert all(r["validated"] is True for r in rows if r["path"] != "scalar")
    assert all(r["fingerprint"]["machine"] == "aarch64" for r in rows)


def test_bad_shapes_file_is_refused(binaries, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("s8_gemm_requant m=0 k=3 n=4\n")
    proc = subprocess.run([str(binaries["host"]), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "bad shape" in proc.stderr
    bad.write_text("s8_conv7x7 c=3\n")
    proc = subprocess.run([str(binaries["host"]), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2 and "unknown op" in proc.stderr


def test_int_only_manifest_lists_kernel_shapes(int_only_artifact):
    from edgekit.artifact import Artifact

    shapes = Artifact.open(int_only_artifact).manifest.exporter["kernel_shapes"]
    ops = {s["op"] for s in shapes}
    assert {"s8_gemm_requant", "s8_shiftmax", "s8_hardswish", "s8_add_requant"} <= ops
    assert all(s["calls"] >= 1 and "=" in s["shape"] for s in shapes)


def test_bench_kernels_local_and_under_qemu(binaries, int_only_artifact):
    from edgekit.bench.kernels import run_kernel_bench

    cfg = BenchConfig(runs=3, warmup_seconds=0.01, min_seconds=0.0, timeout=600)
    local = run_kernel_bench([int_only_artifact], "local", cfg, kernel_paths="autovec")
    assert local and all(r["status"] == "ok" and r["path"] == "autovec" for r in local)
    assert all(r["validated"] is True and not r.get("emulated") for r in local)
    emulated = run_kernel_bench([int_only_artifact], "qemu://cortex-a76", cfg,
                                kernel_paths="neon,neondot")
    assert {r["path"] for r in emulated} == {"neon", "neondot"}
    assert all(r["emulated"] is True and "not device speeds" in r["warning"] for r in emulated)
    assert all(r["validated"] is True for r in emulated)
    assert all(r["fingerprint"]["artifact_sha256"] for r in emulated)


def test_bench_kernels_refuses_artifacts_without_kernel_shapes(tiny_artifact):
    from edgekit.bench.kernels import run_kernel_bench

    with pytest.raises(UsageError, match="no kernel shapes") as info:
        run_kernel_bench([tiny_artifact], "local", BenchConfig())
    assert "int-only" in (info.value.hint or "")


def test_cli_kernels_refuses_native_and_compare(int_only_artifact):
    from click.testing import CliRunner

    from edgekit.cli import cli

    res = CliRunner().invoke(cli, ["bench", str(int_only_artifact), "--kernels", "--compare"])
    assert res.exit_code == 2 and "does not combine with --compare" in res.output
