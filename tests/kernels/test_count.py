"""Instruction counting from qemu's own logs is exact and attributes work to the right kernel:
counts grow exactly linearly with the element count (no sampling, no start-up noise), NEON
needs fewer instructions than scalar, and llvm-mca turns the same blocks into cycles."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgekit.kernels import count as kc
from tests.kernels import KERNELS, make_kernels


@pytest.fixture(scope="module")
def bench() -> Path:
    proc = make_kernels("build/a64/ek_bench", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return KERNELS / "build/a64/ek_bench"


def test_counts_are_exactly_linear_in_the_element_count(bench):
    counts = [kc.count(bench, mca=None, shapes={"s8_add_requant": (f"count={n}", n)})
              ["s8_add_requant"] for n in (1024, 2048, 3072)]
    for path in ("scalar", "autovec", "neon"):
        c1, c2, c3 = (c[path] for c in counts)
        assert isinstance(c1, int) and c1 > 1024
        assert c3 - c2 == c2 - c1 > 0, (path, c1, c2, c3)  # a fixed cost per 1024 elements
    assert counts[0]["neon"] < counts[0]["scalar"]


def test_every_kernel_path_is_counted_with_mca_cycles(bench):
    shapes = {"s8_gemm_requant": ("m=8 k=64 n=8", 8 * 64 * 8),
              "s8_shiftmax": ("rows=2 len=64", 128)}
    result = kc.count(bench, shapes=shapes)
    assert set(result["s8_gemm_requant"]) == {"scalar", "autovec", "neon", "neondot", "i8mm"}
    gemm = result["s8_gemm_requant"]
    assert gemm["scalar"] > gemm["neon"] > max(gemm["neondot"], gemm["i8mm"])
    assert set(result) == {*shapes, "shapes", "llvm_mca_cycles_per_element"}
    for op, (text, elements) in shapes.items():
        assert result["shapes"][op] == {"shape": text, "elements": elements}
        cycles = result["llvm_mca_cycles_per_element"][op]
        assert set(cycles) == set(kc.MCA_CPUS)
        for cpu in kc.MCA_CPUS:
            assert set(cycles[cpu]) == set(result[op])
            assert all(v > 0 for v in cycles[cpu].values()), (op, cpu)


def test_log_parser_counts_executions_times_block_length():
    log = ["----------------", "IN: f",
           "0x00001000:  d2800000  movz     x0, #0",
           "0x00001004:  d2800001  movz     x1, #0", "",
           "Trace 0: 0x7f [00000000/0000000000001000/00000001/00000200] f",
           "Trace 0: 0x7f [00000000/0000000000001000/00000001/00000200] f",
           "IN: f", "0x00001000:  d2800000  movz     x0, #0", "",  # retranslated, shorter
           "Trace 0: 0x7f [00000000/0000000000001000/00000001/00000200] f"]
    trace = kc.parse_log(iter(line + "\n" for line in log))
    blocks = trace.in_range(0x1000, 0x1010)
    assert sum(b.executions * len(b.insns) for b in blocks) == 2 * 2 + 1 * 1
    assert trace.in_range(0x2000, 0x3000) == []


def test_a_fallback_call_is_charged_to_the_calling_kernel(bench):
    """Shiftmax NEON hands scales it cannot divide exactly (|x0| < 2) to the scalar kernel: the
    NEON call's count includes that work, and the scalar call's count does not."""
    result = kc.count(bench, mca=None, shapes={"s8_shiftmax": ("rows=3 len=40 x0=-1", 120)})
    sm = result["s8_shiftmax"]
    assert sm["scalar"] > 1000
    assert 0 <= sm["neon"] - sm["scalar"] < 40, sm  # the scalar work + the call
