"""`edgekit compile --npu`: Arm's Ethos-U compiler (Vela, PyPI `ethos-u-vela`) on a TFLite file.

Vela runs as a child process with an explicit accelerator, system configuration and memory mode
(the ones Vela would pick by default for that accelerator, named instead of guessed), and its
own summary is parsed: operators on the NPU vs left to the CPU (each named), SRAM and flash
bytes, NPU cycles and the estimated inference time at the configuration's clock. The optimized
.tflite (the NPU command stream inside an `ethos-u` custom op) is kept; in an artifact directory
it is written beside the model and the summary goes into the manifest under `npu`.

These are Vela's performance *estimates*, not measurements: `edgekit bench --device
vela://ACCELERATOR` reports them as a flagged "estimated" row.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError, CompileError, MissingDependency, UsageError

# accelerator → (system config, memory mode): Vela 5.2's own defaults, from its vela.ini
ACCELERATORS: dict[str, tuple[str, str]] = {
    **{f"ethos-u55-{m}": ("Ethos_U55_High_End_Embedded", "Shared_Sram")
       for m in (32, 64, 128, 256)},
    **{f"ethos-u65-{m}": ("Ethos_U65_Client_Server", "Dedicated_Sram_384KB") for m in (256, 512)},
    **{f"ethos-u85-{m}": ("Ethos_U85_SYS_DRAM_Mid", "Dedicated_Sram_384KB")
       for m in (128, 256, 512, 1024, 2048)},
}
_OPS = re.compile(r"^(CPU|NPU) operators = (\d+) \(([\d.]+)%\)", re.M)
_CPU_OP = re.compile(r"^\s*(?:CPU operator|Operator):?\s*(\w+)", re.M)


@dataclass(frozen=True)
class NpuSummary:
    accelerator: str
    system_config: str
    memory_mode: str
    npu_ops: int
    cpu_ops: int
    npu_op_share: float
    cpu_op_types: dict[str, int] = field(default_factory=dict)
    macs: int = 0  # MACs Vela schedules (the network's, as Vela counts them)
    cycles_total: int = 0
    cycles_npu: int = 0
    clock_hz: float = 0.0
    inference_ms: float = 0.0
    inferences_per_second: float = 0.0
    sram_bytes: int = 0
    flash_bytes: int = 0
    dram_bytes: int = 0
    vela_version: str = ""
    optimized_file: str | None = None
    estimated: bool = True  # Vela's performance model, not a measurement

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def vela_version() -> str:
    from edgekit.runtime import dist_version

    try:
        import ethosu.vela  # noqa: F401
    except ImportError:
        raise MissingDependency("Vela (ethos-u-vela) is not installed",
                                hint="pip install 'edgekit[npu]' (make setup installs it)"
                                ) from None
    return dist_version("ethos-u-vela") or "?"


def _vela_ini() -> Path:
    return Path(str(resources.files("ethosu").joinpath("config_files/Arm/vela.ini")))


def compile_for_npu(path: Path, accelerator: str, out_dir: Path | None = None,
                    timeout: float = 1800.0, record: bool = True) -> NpuSummary:
    """Compile a .tflite file (or a TFLite artifact directory) for `accelerator`; with `record`
    an artifact's manifest gets the summary under `npu`."""
    from edgekit.artifact import MANIFEST_NAME, Artifact
    from edgekit.inspect import describe_file

    if accelerator not in ACCELERATORS:
        raise UsageError(f"unknown NPU '{accelerator}'",
                         hint="one of: " + ", ".join(ACCELERATORS))
    artifact = Artifact.open(path) if path.is_dir() else None
    model = artifact.model_path if artifact else path
    if model.suffix != ".tflite":
        raise UsageError(f"Vela compiles TFLite files, not {model.suffix or 'this'}",
                         path=model, hint="export --to tflite --quant int-only")
    describe_file(model, "tflite")  # parsed in an isolated child: a bad file stops here
    version = vela_version()
    system, memory = ACCELERATORS[accelerator]
    with tempfile.TemporaryDirectory(prefix="edgekit-vela-") as tmp:
        cmd = [sys.executable, "-c", "import sys; from ethosu.vela.vela import main; "
               "sys.exit(main())", str(model), "--accelerator-config", accelerator,
               "--config", str(_vela_ini()), "--system-config", system, "--memory-mode", memory,
               "--output-dir", tmp, "--show-cpu-operations"]
        for _attempt in range(2):  # Vela's native core crashed once here (SIGSEGV) and then
            try:                  # compiled the same file cleanly: a crash is retried once
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                      env={**os.environ, "PYTHONHASHSEED": "0"})
            except subprocess.TimeoutExpired:
                raise CompileError(f"Vela did not finish within {timeout:.0f} s", path=model,
                                   hint="raise --timeout") from None
            if proc.returncode >= 0:
                break
        log = proc.stdout + proc.stderr
        csvs = sorted(Path(tmp).glob("*_summary_*.csv"))
        optimized = sorted(Path(tmp).glob("*_vela.tflite"))
        if proc.returncode != 0 or not csvs or not optimized:
            tail = " | ".join(line for line in log.strip().splitlines()[-4:])
            raise CompileError(f"Vela could not compile {model.name} for {accelerator} "
                            f"(exit {proc.returncode}): {tail[:600]}", path=model,
                            hint="`edgekit inspect --integer-only` names float ops; Vela "
                                 "needs an integer TFLite")
        summary = _summary(accelerator, system, memory, log, csvs[0], version)
        dest_dir = out_dir or (artifact.path if artifact else model.parent)
        dest = dest_dir / f"{model.stem}_vela_{accelerator}.tflite"
        tmp_dest = dest.with_name(f".{dest.name}.tmp")
        tmp_dest.write_bytes(optimized[0].read_bytes())
        tmp_dest.replace(dest)
    summary = NpuSummary(**{**summary.to_dict(), "optimized_file": dest.name})
    if artifact is not None and record:
        manifest_path = artifact.path / MANIFEST_NAME
        data = json.loads(manifest_path.read_text())
        data.setdefault("npu", {})[accelerator] = summary.to_dict()
        staged = manifest_path.with_name(f".{MANIFEST_NAME}.tmp")
        staged.write_text(json.dumps(data, indent=2))
        staged.replace(manifest_path)
    return summary


def _summary(accelerator: str, system: str, memory: str, log: str, csv_path: Path,
             version: str) -> NpuSummary:
    counts = {kind: (int(n), float(share)) for kind, n, share in _OPS.findall(log)}
    if "NPU" not in counts:
        raise ArtifactError("Vela printed no operator summary", path=csv_path,
                            hint="run vela directly to see its output")
    cpu_types: dict[str, int] = {}
    for line in log.splitlines():
        # --show-cpu-operations: "Warning (supported operators) operator: OP, ofm: …" and
        # "CPU operators" listings, each naming the op Vela leaves to the CPU
        m = re.search(r"operator: (\w+)", line) if "supported operators" in line else None
        if m:
            cpu_types[m.group(1)] = cpu_types.get(m.group(1), 0) + 1
    with csv_path.open() as f:
        row = next(csv.DictReader(f))

    def num(key: str) -> float:
        try:
            return float(row.get(key) or 0.0)
        except ValueError:
            return 0.0

    cpu_ops, npu_ops = counts.get("CPU", (0, 0.0))[0], counts["NPU"][0]
    return NpuSummary(
        accelerator=accelerator, system_config=system, memory_mode=memory, npu_ops=npu_ops,
        cpu_ops=cpu_ops, npu_op_share=npu_ops / max(1, npu_ops + cpu_ops),
        cpu_op_types=cpu_types, macs=int(num("nn_macs")), cycles_total=int(num("cycles_total")),
        cycles_npu=int(num("cycles_npu")), clock_hz=num("core_clock"),
        inference_ms=num("inference_time") * 1e3,
        inferences_per_second=num("inferences_per_second"),
        sram_bytes=int(num("sram_memory_used") * 1024),
        flash_bytes=int((num("off_chip_flash_memory_used") + num("on_chip_flash_memory_used"))
                        * 1024),
        dram_bytes=int(num("dram_memory_used") * 1024), vela_version=version)


class VelaCollector:
    """`edgekit bench --device vela://ACCELERATOR`: Vela's performance estimate of each TFLite
    artifact as a bench row flagged `estimated` (no run, no samples: a model, not a clock)."""

    def __init__(self, accelerator: str) -> None:
        if accelerator not in ACCELERATORS:
            raise UsageError(f"unknown NPU '{accelerator}' in vela://{accelerator}",
                             hint="one of: " + ", ".join(ACCELERATORS))
        self.accelerator = accelerator

    def measure(self, paths: list[Path], cfg: Any) -> list[dict[str, Any]]:
        from edgekit.artifact import Artifact

        rows = []
        for path in paths:
            m = Artifact.open(path).manifest
            with tempfile.TemporaryDirectory(prefix="edgekit-vela-bench-") as tmp:
                s = compile_for_npu(Path(path), self.accelerator, Path(tmp),
                                    timeout=cfg.timeout, record=False)
            rows.append({
                "status": "ok", "artifact": str(path), "model": m.model, "format": m.format,
                "quant": m.quant, "runtime": "vela", "runtime_version": s.vela_version,
                "device": f"vela://{self.accelerator}", "estimated": True,
                "median_ms": s.inference_ms, "p90_ms": None, "p99_ms": None, "cv": None,
                "iterations": 0, "samples_ms": [], "init_ms": None, "first_ms": None,
                "peak_rss_mb": None, "stable": None, "plausible": None, "validated": None,
                "npu": s.to_dict()})
        return rows
