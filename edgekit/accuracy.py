"""Top-1 of an artifact on real held-out labelled data, run in the artifact's own runtime.

    edgekit accuracy artifacts/fmnist_levit.int8.onnx --data fmnist

Only Fashion-MNIST ships labelled and offline here; models trained on it (`fmnist_*`) are the
ones whose accuracy means something. The runtime runs in an isolated child (see isolation.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import Artifact
from edgekit.errors import MissingDependency, UsageError
from edgekit.exporter import EXPORTERS
from edgekit.isolation import run_isolated
from edgekit.registry import Registry
from edgekit.runtime import DEFAULT_RUNTIME, RUNTIMES

# A dataset: (split, data_config) -> (preprocessed float32 NCHW inputs, int labels)
Loader = Callable[[str, dict[str, Any], int | None], tuple[np.ndarray, np.ndarray]]


def _fashion_mnist(split: str, data_config: dict[str, Any], limit: int | None
                   ) -> tuple[np.ndarray, np.ndarray]:
    from edgekit import fashion_mnist as fm

    images, labels = fm.load(split)
    if limit:
        images, labels = images[:limit], labels[:limit]
    x = fm.to_model_input(images, int(data_config["input_size"][-1]),
                          tuple(data_config["mean"]), tuple(data_config["std"]))
    return x, labels.astype(np.int64)


DATASETS: Registry[Loader] = Registry("dataset")
DATASETS.register("fmnist", _fashion_mnist)


@dataclass(frozen=True)
class AccuracyReport:
    artifact: str
    model: str
    format: str
    quant: str
    runtime: str
    data: str
    split: str
    n: int
    top1: float  # percent
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _predict(fmt: str, runtime_name: str, model_path: str, x: np.ndarray, batch: int,
             nhwc: bool, threads: int | None) -> np.ndarray:
    """Child-process body: argmax of the first output over all inputs."""
    EXPORTERS.get(fmt).describe(Path(model_path))
    session = RUNTIMES.get(runtime_name)().load(Path(model_path), threads)
    name = next(iter(session.inputs))
    preds = []
    for start in range(0, len(x) - batch + 1, batch):
        chunk = x[start:start + batch]
        if nhwc:
            chunk = chunk.transpose(0, 2, 3, 1)
        out = next(iter(session.run({name: np.ascontiguousarray(chunk)}).values()))
        preds.append(np.asarray(out).reshape(batch, -1).argmax(1))
    return np.concatenate(preds)


def evaluate_artifact(path: Path, data: str = "fmnist", split: str = "test",
                      limit: int | None = None, threads: int | None = None,
                      runtime: str | None = None, timeout: float = 3600.0) -> AccuracyReport:
    artifact = Artifact.open(path)
    m = artifact.manifest
    if data not in DATASETS:
        raise UsageError(f"unknown dataset '{data}'", hint=f"use {', '.join(DATASETS.list())}")
    trained_on = (m.preprocessing or {}).get("dataset")
    if trained_on != data:
        raise UsageError(f"{m.model} was not trained on {data} (trained on: "
                         f"{trained_on or 'ImageNet-style data / random weights'})",
                         path=path, hint="measure accuracy on fmnist_* models, e.g. "
                                         "`edgekit export fmnist_levit --quant int8`")
    runtime_name = runtime or DEFAULT_RUNTIME[m.format]
    runtime_cls = RUNTIMES.get(runtime_name)
    if not runtime_cls.available():
        hint = ("Core ML prediction needs macOS (coremltools' runtime); run this command on a "
                "Mac" if m.format == "coreml" else "see `edgekit doctor`")
        raise MissingDependency(f"runtime {runtime_name} is not available here", path=path,
                                hint=hint)
    loader = DATASETS.get(data)
    x, labels = loader(split, m.preprocessing, limit)
    batch = max(1, int(m.inputs[0].shape[0]))
    usable = len(x) - len(x) % batch
    started = time.perf_counter()
    preds = run_isolated(_predict, m.format, runtime_name, str(artifact.model_path), x[:usable],
                         batch, m.inputs[0].layout == "NHWC", threads,
                         what=f"{runtime_name} running {m.file}", path=str(artifact.model_path),
                         timeout=timeout)
    seconds = time.perf_counter() - started
    top1 = float((preds == labels[:usable]).mean() * 100)
    return AccuracyReport(str(path), m.model, m.format, m.quant, runtime_name, data, split,
                          usable, round(top1, 2), round(seconds, 1))
