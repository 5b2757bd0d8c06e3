"""Exact instructions per call of every kernel path, from qemu-aarch64's own logs, and llvm-mca
cycle estimates — no ARM hardware, no TCG plugins (Debian's qemu ships none).

One run of `ek_bench --once` under `qemu-aarch64 -cpu max -d in_asm,exec,nochain` calls each
kernel once at fixed LeViT-128S-like shapes. The log, read through a FIFO so nothing large hits
the disk, gives every translated block's instructions (in_asm) and every execution of a block
(exec; `nochain` makes qemu log each one). ek_bench executes a marker function before each
call; a call's count is Σ executions × block length of the blocks inside the kernel symbols'
address ranges (`nm -S`) up to the next mark — start-up, argv and input set-up fall outside, and
a NEON kernel's scalar tail (a call into the scalar kernel) counts for the NEON call. Kernels
inline their helpers and call no libc, so nothing escapes the ranges (a test disassembles them
to check).

llvm-mca then estimates cycles for Cortex-A55 and Cortex-A76: each block's steady-state cycles
per iteration (its instructions from the same log) × its execution count, summed, divided by the
kernel's elements. Optimistic by construction (L1 hits, perfect branch prediction).

    python -m edgekit.kernels.count --bench kernels_arm/build/a64/ek_bench   # one JSON line
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The fixed shapes (LeViT-128S stage 1: 14×14 = 196 tokens of width 128, 4 heads, MLP 2×;
# depthwise/pool at the same 128×14×14). Elements: MACs for GEMM, matmul and convolutions,
# inputs for the mean, outputs else.
COUNT_SHAPES: dict[str, tuple[str, int]] = {
    "s8_gemm_requant": ("m=196 k=128 n=256", 196 * 128 * 256),
    "s8_dwconv3x3_requant": ("c=128 h=14 w_in=14 stride=1 pad=1", 128 * 14 * 14 * 9),
    "s8_shiftmax": ("rows=784 len=196", 784 * 196),
    "s8_shiftgelu": ("count=50176", 50176),
    "s8_ilayernorm": ("rows=196 c=128", 196 * 128),
    "s8_avgpool_requant": ("c=128 h=14 w_in=14 kernel=3 stride=1 pad=1", 128 * 14 * 14),
    "s8_add_requant": ("count=25088", 25088),
    "s8_hardswish": ("count=50176", 50176),
    "s8_addconst_requant": ("count=153664", 153664),  # 4 heads' 196×196 attention biases
    "s8_mulconst_requant": ("count=25088", 25088),
    # one head's softmax·V; an RGB stem conv (3→16, 3×3 stride 2) at 64×64; EfficientFormer-L1's
    # token mean; NCHW ↔ NHWC at 128×14×14
    "s8_matmul_requant": ("m=196 k=196 n=32 a_unsigned=1", 196 * 196 * 32),
    "s8_conv2d_requant": ("c=3 h=64 w_in=64 o=16 kh=3 kw=3 sh=2 sw=2 ph=1 pw=1",
                          32 * 32 * 27 * 16),
    "s8_mean_requant": ("outer=1 count=49 inner=448", 49 * 448),
    "x8_transpose": ("rows=196 cols=128", 196 * 128),
    "x8_lut": ("count=50176", 50176),
}
MCA_CPUS = ("cortex-a55", "cortex-a76")
_INSN = re.compile(r"^0x([0-9a-f]+):\s+[0-9a-f]{8}\s+(.*)$")
_BRANCH = re.compile(r"^(b|bl|b\.\w+|cbz|cbnz|tbz|tbnz)\s")


@dataclass
class Block:
    pc: int
    insns: list[str]
    executions: int = 0  # over the whole run


@dataclass
class Trace:
    """Block executions of one qemu run. `segments[i]` counts, per block index, the executions
    inside the kernel ranges after the i-th execution of the marker function (segment 0: before
    any mark). A block retranslated at the same pc is a new block with its own length."""
    blocks: list[Block] = field(default_factory=list)
    segments: list[Counter[int]] = field(default_factory=lambda: [Counter()])

    def in_range(self, lo: int, hi: int) -> list[Block]:
        return [b for b in self.blocks if lo <= b.pc < hi and b.executions]


class Ranges:
    """Sorted, non-overlapping [lo, hi) address ranges with a fast membership test."""

    def __init__(self, ranges: list[tuple[int, int]]) -> None:
        self._lo = [lo for lo, _ in sorted(ranges)]
        self._hi = [hi for _, hi in sorted(ranges)]

    def __contains__(self, pc: int) -> bool:
        i = bisect.bisect_right(self._lo, pc) - 1
        return i >= 0 and pc < self._hi[i]


def parse_log(lines: Iterable[str], marker: tuple[int, int] | None = None,
              kernels: Ranges | None = None) -> Trace:
    """Parse `-d in_asm,exec,nochain` output. With `marker` and `kernels`, segment the kernel
    block executions at each execution of the marker's block."""
    trace = Trace()
    current: dict[int, int] = {}  # pc → index of its latest translation
    in_kernels: dict[int, bool] = {}
    pending: list[str] | None = None
    pending_pc = 0
    for line in lines:
        if line.startswith("Trace "):
            pc = int(line.split("/", 2)[1], 16)
            index = current.get(pc)
            if index is None:
                continue
            trace.blocks[index].executions += 1
            if marker is not None and marker[0] <= pc < marker[1]:
                trace.segments.append(Counter())
            elif kernels is None or in_kernels[pc]:
                trace.segments[-1][index] += 1
            continue
        if line.startswith("IN:"):
            pending, pending_pc = [], -1
            continue
        if pending is not None:
            m = _INSN.match(line)
            if m:
                if pending_pc < 0:
                    pending_pc = int(m.group(1), 16)
                pending.append(m.group(2).strip())
            elif not line.strip() and pending:
                current[pending_pc] = len(trace.blocks)
                in_kernels[pending_pc] = kernels is not None and pending_pc in kernels
                trace.blocks.append(Block(pending_pc, pending))
                pending = None
    return trace


def symbols(binary: Path, nm: str = "aarch64-linux-gnu-nm") -> dict[str, tuple[int, int]]:
    """Function symbols → (start, end)."""
    out = subprocess.run([nm, "-S", "--defined-only", str(binary)], capture_output=True,
                         text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "tT":
            start, size = int(parts[0], 16), int(parts[1], 16)
            syms[parts[3]] = (start, start + size)
    return syms


def run_logged(cmd: list[str], qemu: str, cpu: str = "max",
               parse: Callable[[Iterable[str]], Trace] = parse_log) -> tuple[Trace, str]:
    """Run an aarch64 command under qemu with block logging into a FIFO, parsed as it streams;
    returns the trace and the command's stderr."""
    with tempfile.TemporaryDirectory() as tmp:
        fifo = Path(tmp) / "qemu.log"
        os.mkfifo(fifo)
        result: dict[str, Trace] = {}

        def reader() -> None:
            with open(fifo, errors="replace") as f:
                result["trace"] = parse(f)

        thread = threading.Thread(target=reader)
        thread.start()
        proc = subprocess.run([qemu, "-cpu", cpu, "-d", "in_asm,exec,nochain", "-D", str(fifo),
                               *cmd], capture_output=True, text=True)
        if proc.returncode != 0:
            open(fifo, "w").close()  # unblock the reader if qemu never opened the log
        thread.join()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed under {qemu}: {proc.stderr[-500:]}")
        return result["trace"], proc.stderr


def _mca_source(insns: list[str]) -> str:
    """A block's instructions as llvm-mca input: branch targets become a local label."""
    lines = [".Ltarget:"]
    for insn in insns:
        if _BRANCH.match(insn):
            head, _, _ = insn.rpartition("#0x")
            insn = head.rstrip() + " .Ltarget" if head else insn
        lines.append(insn)
    return "\n".join(lines) + "\n"


def mca_cycles(blocks: list[tuple[Block, int]], cpu: str, mca: str) -> float | None:
    """Σ executions × steady-state cycles per iteration of each (block, executions) (one
    llvm-mca run with a region per block)."""
    if not blocks:
        return None
    src = []
    for i, (b, _) in enumerate(blocks):
        src.append(f"# LLVM-MCA-BEGIN b{i}\n{_mca_source(b.insns)}# LLVM-MCA-END b{i}\n")
    proc = subprocess.run([mca, "-mtriple=aarch64", f"-mcpu={cpu}",
                           "-mattr=+dotprod,+i8mm,+fullfp16", "-iterations=100",
                           "-all-stats=false", "-instruction-info=false",
                           "-resource-pressure=false"],
                          input="".join(src), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"llvm-mca failed: {proc.stderr[-400:]}")
    totals = [int(x) for x in re.findall(r"Total Cycles:\s+(\d+)", proc.stdout)]
    iters = [int(x) for x in re.findall(r"Iterations:\s+(\d+)", proc.stdout)]
    if len(totals) != len(blocks):
        raise RuntimeError(f"llvm-mca returned {len(totals)} regions for {len(blocks)} blocks")
    return sum(n * t / it for (_, n), t, it in zip(blocks, totals, iters, strict=True))


def count(bench: Path, qemu: str = "qemu-aarch64", nm: str = "aarch64-linux-gnu-nm",
          mca: str | None = "llvm-mca-14", shapes: dict[str, tuple[str, int]] | None = None
          ) -> dict[str, Any]:
    """{op: {path: instructions per call}} for every kernel run, plus "shapes" ({op: {shape,
    elements}}) and, with llvm-mca, "llvm_mca_cycles_per_element" ({op: {cpu: {path: c}}}).

    A call's count is every instruction executed inside any kernel symbol between ek_bench's
    mark before that call and the next one, so a NEON kernel's scalar tail (a call into the
    scalar kernel) is charged to the NEON call."""
    shapes = shapes or COUNT_SHAPES
    syms = symbols(bench, nm)
    if "ek_count_mark" not in syms:
        raise RuntimeError(f"{bench} has no ek_count_mark: rebuild it (make -C kernels_arm bench)")
    kernels = Ranges([r for name, r in syms.items()
                      if name.startswith("ek_") and "__" in name])
    with tempfile.NamedTemporaryFile("w", suffix=".shapes", delete=False) as f:
        for op, (text, _) in shapes.items():
            f.write(f"{op} {text}\n")
        shapes_file = f.name
    try:
        trace, stderr = run_logged(
            [str(bench), shapes_file, "--once"], qemu,
            parse=lambda lines: parse_log(lines, syms["ek_count_mark"], kernels))
    finally:
        os.unlink(shapes_file)
    calls = [line.split()[1] for line in stderr.splitlines() if line.startswith("ran ")]
    if len(calls) != len(trace.segments) - 1:
        raise RuntimeError(f"{len(calls)} kernel calls but {len(trace.segments) - 1} marks")
    instructions: dict[str, dict[str, int]] = defaultdict(dict)
    cycles: dict[str, dict[str, dict[str, float | None]]] = defaultdict(lambda: defaultdict(dict))
    for name, segment in zip(calls, trace.segments[1:], strict=True):
        op, path = name[len("ek_"):].split("__", 1)
        executed = [(trace.blocks[i], n) for i, n in segment.items()]
        instructions[op][path] = sum(len(b.insns) * n for b, n in executed)
        for cpu in MCA_CPUS if mca else ():
            total = mca_cycles(executed, cpu, mca or "")
            cycles[op][cpu][path] = round(total / shapes[op][1], 3) if total else None
    out: dict[str, Any] = {op: dict(paths) for op, paths in instructions.items()}
    out["shapes"] = {op: {"shape": shapes[op][0], "elements": shapes[op][1]}
                     for op in instructions}
    if mca:
        out["llvm_mca_cycles_per_element"] = {op: {c: dict(p) for c, p in per.items()}
                                              for op, per in cycles.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="instructions per kernel call under qemu")
    parser.add_argument("--bench", type=Path, required=True, help="static aarch64 ek_bench")
    parser.add_argument("--qemu", default="qemu-aarch64")
    parser.add_argument("--nm", default="aarch64-linux-gnu-nm")
    parser.add_argument("--mca", default="llvm-mca-14", help="llvm-mca binary ('' to skip)")
    args = parser.parse_args()
    try:
        result = count(args.bench, args.qemu, args.nm, args.mca or None)
    except (RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as exc:
        sys.exit(f"count: {exc}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
