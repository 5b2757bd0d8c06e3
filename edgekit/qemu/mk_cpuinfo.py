"""Runs UNDER qemu-aarch64 -cpu MODEL (the device's own Python): prints an aarch64
/proc/cpuinfo for MODEL (with --midr: its MIDR_EL1 for sysfs).

qemu 7.2 user-mode passes the host's x86 /proc/cpuinfo through, which makes pytorch/cpuinfo
(inside onnxruntime and XNNPACK) segfault or pick wrong kernels; a file at
SYSROOT/proc/cpuinfo wins under `-L SYSROOT`. Features come from the emulated AT_HWCAP and
AT_HWCAP2 (/proc/self/auxv), the MIDR from qemu 7.2's values for that core. Standard library
only: it runs before any wheel is installed."""

import os
import struct
import sys

MIDR = {  # implementer, variant, part, revision (qemu 7.2)
    "cortex-a53": (0x41, 0x0, 0xD03, 4), "cortex-a72": (0x41, 0x0, 0xD08, 3),
    "cortex-a76": (0x41, 0x4, 0xD0B, 1), "neoverse-n1": (0x41, 0x4, 0xD0C, 1),
    "a64fx": (0x46, 0x1, 0x001, 0), "max": (0x00, 0x0, 0x051, 0)}
HWCAP = ("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt "
         "fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs "
         "sb paca pacg").split()
HWCAP2 = ("dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm "
          "svef64mm svebf16 i8mm bf16 dgh rng bti mte ecv afp rpres mte3 sme smei16i64 "
          "smef64f64 smei8i32 smef16f32 smeb16f32 smef32f32 smefa64 wfxt ebf16 sveebf16").split()


def midr(model: str) -> str:
    """MIDR_EL1 as Linux shows it in /sys/devices/system/cpu/cpuN/regs/identification/."""
    imp, var, part, rev = MIDR[model]
    return f"0x{imp << 24 | var << 20 | 0xF << 16 | part << 4 | rev:016x}"


def main() -> None:
    model = sys.argv[1].split(",")[0]
    if sys.argv[2:] == ["--midr"]:
        print(midr(model))
        return
    with open("/proc/self/auxv", "rb") as f:
        values = dict(struct.iter_unpack("<QQ", f.read()))
    hw, hw2 = values.get(16, 0), values.get(26, 0)
    features = [n for i, n in enumerate(HWCAP) if hw >> i & 1] + \
        [n for i, n in enumerate(HWCAP2) if hw2 >> i & 1]
    imp, var, part, rev = MIDR[model]
    for cpu in range(os.cpu_count() or 1):
        print(f"processor\t: {cpu}\nBogoMIPS\t: 50.00\nFeatures\t: {' '.join(features)}\n"
              f"CPU implementer\t: 0x{imp:02x}\nCPU architecture: 8\nCPU variant\t: 0x{var:x}\n"
              f"CPU part\t: 0x{part:03x}\nCPU revision\t: {rev}\n")


if __name__ == "__main__":
    main()
