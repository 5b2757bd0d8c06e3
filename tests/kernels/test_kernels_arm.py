"""kernels_arm/: `make test` builds for the host and cross-builds for aarch64, then runs the
golden-vector tests natively and under real qemu-aarch64 at four ISA levels, plus sanitized
builds (host ASan+UBSan, aarch64 UBSan); every level must report "N passed, 0 failed". A
dotprod-carrying binary on a Cortex-A53 (no dotprod) must fall back to the armv8-a NEON path
instead of dying with SIGILL."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from edgekit import kernels as ek
from tests.kernels import KERNELS, make_kernels

LEVELS = ("host", "nosimd", "armv8-a", "dotprod", "i8mm", "host-sanitized", "aarch64-ubsan")
TOOLS = ("aarch64-linux-gnu-gcc", "qemu-aarch64", "aarch64-linux-gnu-nm", "make")


def _make(*targets: str) -> subprocess.CompletedProcess[str]:
    missing = [t for t in TOOLS if not shutil.which(t)]
    assert not missing, (f"missing {missing}: scripts/bootstrap.sh installs "
                         "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user (as root)")
    return make_kernels(*targets)


@pytest.fixture(scope="module")
def make_test() -> str:
    proc = _make("test")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return proc.stdout


def _disassemble(binary: Path) -> str:
    return subprocess.run(["aarch64-linux-gnu-objdump", "-d", "--no-show-raw-insn", str(binary)],
                          capture_output=True, text=True, check=True).stdout


def _level(out: str, name: str) -> str:
    """The output of one level: from its header (qemu levels) to its summary line."""
    end = re.search(rf"^{re.escape(name)}: \d+ passed, \d+ failed.*$", out, re.M)
    assert end, f"no summary for level {name}"
    start = out.rfind("== ", 0, end.start()) if name != "host" else 0
    return out[max(start, 0):end.end()]


@pytest.mark.parametrize("level", LEVELS)
def test_every_level_passes_bit_exact(make_test, level):
    block = _level(make_test, level)
    passed, failed = map(int, re.search(rf"^{re.escape(level)}: (\d+) passed, (\d+) failed",
                                        block, re.M).groups())
    assert failed == 0 and passed >= 100, block[-2000:]
    assert "FAIL" not in block


def test_neon_paths_run_under_qemu_and_dispatch_follows_the_cpu(make_test):
    a53, a76, cpu_max = (_level(make_test, n) for n in ("armv8-a", "dotprod", "i8mm"))
    for block in (a53, a76, cpu_max):
        for op in ek.OPS:  # every op has a NEON path
            assert re.search(rf"ek_{op}__neon\s+\d+ passed, 0 failed", block), (op, block)
    # Cortex-A53 lacks dotprod: the kernel is compiled in but not run, dispatch picks neon
    assert re.search(r"ek_s8_gemm_requant__neondot\s+not run", a53)
    assert "selected s8_gemm_requant: neon\n" in a53
    assert "selected s8_gemm_requant: neondot" in a76  # dotprod, no i8mm
    assert re.search(r"ek_s8_gemm_requant__i8mm\s+not run", a76)
    assert "selected s8_gemm_requant: i8mm" in cpu_max
    for op in ("s8_gemm_requant", "s8_matmul_requant", "s8_conv2d_requant"):
        for path in ("neondot", "i8mm"):
            assert re.search(rf"ek_{op}__{path}\s+\d+ passed, 0 failed", cpu_max), (op, path)
    assert "selected s8_conv2d_requant: neondot" in a76


def test_dotprod_binary_on_cortex_a53_does_not_sigill(make_test):
    """Directly: exit status 0, not -SIGILL (-4), and the neon path does the GEMM."""
    proc = subprocess.run(["qemu-aarch64", "-cpu", "cortex-a53", str(KERNELS / "build/a64/ek_test"),
                           str(KERNELS / "build/golden.bin"), "a53"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-1000:], proc.stderr[-500:])
    assert "selected s8_gemm_requant: neon\n" in proc.stdout
    # The same binary does contain SDOT instructions (in the dotprod kernel only)
    dis = _disassemble(KERNELS / "build/a64/ek_test")
    body = dis.split("<ek_s8_gemm_requant__neondot>:", 1)[1].split("\n\n", 1)[0]
    assert "sdot" in body


def test_nosimd_build_kernels_use_no_simd_registers(make_test):
    dis = _disassemble(KERNELS / "build/nosimd/ek_test")
    bodies = re.findall(r"<(ek_\w+__(?:scalar|autovec))>:\n(.*?)\n\n", dis, re.S)
    kernels = {f"ek_{op}__{path}" for op in ek.OPS for path in ("scalar", "autovec")}
    assert kernels <= {name for name, _ in bodies}  # and their row tasks
    for name, body in bodies:
        assert not re.search(r"\bv\d+\.(16b|8b|8h|4h|4s|2s|2d)\b", body), name


def test_scalar_reference_is_not_auto_vectorized(make_test):
    """gcc -O3 vectorizes plain loops (even with SDOT); the scalar path must stay scalar."""
    dis = _disassemble(KERNELS / "build/a64/ek_test")
    bodies = dict(re.findall(r"<(ek_\w+__(?:scalar|autovec))>:\n(.*?)\n\n", dis, re.S))
    simd = re.compile(r"\bv\d+\.(16b|8h|4s|2d)\b")
    assert not any(simd.search(b) for n, b in bodies.items() if n.endswith("__scalar"))
    assert simd.search(bodies["ek_s8_gemm_requant__autovec"])  # the contrast: -O3 does vectorize


def test_isa_mask_forces_a_fallback_on_a_capable_cpu(make_test):
    """EK_ISA_MASK (documented in ek_kernels.h) masks CPU features: neon only on -cpu max."""
    import os

    proc = subprocess.run(["qemu-aarch64", "-cpu", "max", str(KERNELS / "build/a64/ek_test"),
                           str(KERNELS / "build/golden.bin"), "masked"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "EK_ISA_MASK": "1"})
    assert proc.returncode == 0, proc.stdout[-1000:]
    assert "selected s8_gemm_requant: neon\n" in proc.stdout
    assert re.search(r"ek_s8_gemm_requant__i8mm\s+not run", proc.stdout)


def test_kernels_call_no_library_code(make_test):
    """A kernel may tail-call another kernel (its fallback) but nothing else: memcpy/memset
    would run outside the kernel's symbol, cost a call and escape the instruction counter."""
    dis = _disassemble(KERNELS / "build/a64/ek_test")
    bodies = re.findall(r"<(ek_\w+__\w+)>:\n(.*?)\n\n", dis, re.S)
    assert len(bodies) >= 25
    for name, body in bodies:
        for target in re.findall(r"\b(?:bl|b)\s+[0-9a-f]+ <([\w.]+)(?:\+0x[0-9a-f]+)?>", body):
            assert target == name or re.fullmatch(r"ek_\w+__\w+", target), (name, target)
