"""Shared by the kernel tests: one `make -C kernels_arm` at a time.

`make test` runs the suite in two pytest-xdist workers; two makes writing the same objects in
kernels_arm/build/ at once would race, so every test build takes this lock first.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from pathlib import Path

KERNELS = Path(__file__).resolve().parents[2] / "kernels_arm"


def make_kernels(*targets: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    (KERNELS / "build").mkdir(exist_ok=True)
    with open(KERNELS / "build" / ".make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return subprocess.run(["make", "-C", str(KERNELS), f"PYTHON={sys.executable}", *targets],
                              capture_output=True, text=True, timeout=timeout)
