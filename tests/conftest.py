from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests.tiny_models:tiny_convnet"
TINY_HYBRID = "tests.tiny_models:tiny_hybrid"

# OpenMP workers that sleep instead of spin while they wait, for the suite and the CLI runs it
# spawns. The sensitivity ranking and calibration run hundreds of small forwards; on a shared
# 2-core host spinning workers thrash whenever another process holds a core (measured, a tiny
# model's TFLite sensitivity step: 297 s spinning beside two busy processes, 48 s spinning /
# 26 s passive beside one, 26 s on an idle machine). Torch keeps both cores for big ops.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Subprocesses (CLI runs, spawned children) must import tests.tiny_models too.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def exported_once(tmp_path_factory: pytest.TempPathFactory, name: str,
                  export: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
    """A session fixture's export, done once per test run even when `make test` spreads the suite
    over pytest-xdist workers (separate processes, each with its own session): the first worker
    to need it exports under a file lock into the run's shared temp root, the others wait and
    reuse the artifacts. A failed export leaves nothing behind, so the next worker retries (and
    reports its own failure)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return export(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # one per run, above every worker's basetemp
    done = shared / f"{name}.json"
    with FileLock(str(shared / f"{name}.lock")):
        if done.exists():
            return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
        out = shared / name
        out.mkdir(exist_ok=True)
        paths = export(out)
        done.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
        return paths


@pytest.fixture(scope="session")
def tiny_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real exported + validated ONNX artifact of the tiny model (seconds)."""
    from edgekit.pipeline import ExportRequest, export_model

    def export(out: Path) -> dict[str, Path]:
        (outcome,) = export_model(ExportRequest(model=TINY, out=out))
        return {"onnx": outcome.artifact.path}

    return exported_once(tmp_path_factory, "tiny", export)["onnx"]


@pytest.fixture(scope="session")
def int_only_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The integer-only ONNX and .ekr artifacts of the trained Fashion-MNIST LeViT, from one
    export (one integer graph; the ONNX manifest lists the kernel shapes `edgekit bench
    --kernels` times)."""
    from edgekit.pipeline import ExportRequest, export_model

    def export(out: Path) -> dict[str, Path]:
        outcomes = export_model(ExportRequest(model="fmnist_levit", formats=("onnx", "ekr"),
                                              quant="int-only", out=out))
        return {o.artifact.manifest.format: o.artifact.path for o in outcomes}

    return exported_once(tmp_path_factory, "int-only", export)


@pytest.fixture(scope="session")
def int_only_artifact(int_only_artifacts: dict[str, Path]) -> Path:
    return int_only_artifacts["onnx"]


REAL_MODELS = ("efficientformer_l1", "levit_128s")
ALL_FORMATS = ("onnx", "tflite", "executorch", "coreml")


@pytest.fixture(scope="session")
def real_artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """EfficientFormer-L1 and LeViT-128S exported `--to all` once per session (live weights)."""
    from edgekit.pipeline import ExportRequest, export_model

    def export(out: Path) -> dict[str, Path]:
        return {f"{name}/{o.artifact.manifest.format}": o.artifact.path for name in REAL_MODELS
                for o in export_model(ExportRequest(model=name, formats=ALL_FORMATS, out=out))}

    paths = exported_once(tmp_path_factory, "real", export)
    return {tuple(k.split("/")): v for k, v in paths.items()}  # type: ignore[misc]


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """Factory for a tiny tmpfs (disk-full tests); unmounted afterwards."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        d = tmp_path / f"tmpfs{len(mounted)}"
        d.mkdir()
        if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                          capture_output=True).returncode != 0:
            pytest.skip("mounting a small tmpfs needs root (platform limit, not a failure)")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", str(d)], check=False)
