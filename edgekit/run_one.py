"""`edgekit run`: one input through an artifact on a device, and its output written out.

The input is an image (preprocessed with the manifest's own eval transform: resize, crop,
normalise) or a .npy array (N, C, H, W) fed as is. The device is the host (`local`: the x86
runtime in a child process), or `qemu://CPU` (the aarch64 runtime under emulation), or
`ssh://user@host[:port]` or `adb://SERIAL` (the agent on the board or phone). The output is
what that runtime computed, for the moment a device disagrees with the host."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifact import Artifact
from edgekit.errors import UsageError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff"}


def load_input(artifact: Artifact, path: Path) -> np.ndarray:
    """The batch to run: an image through the manifest's preprocessing, or a .npy as is."""
    want = tuple(artifact.manifest.inputs[0].shape[1:])
    if not path.exists():
        raise UsageError(f"input {path} does not exist", hint="pass an image or a .npy file")
    if path.suffix.lower() == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UsageError(f"{path} is not a readable .npy array ({exc})",
                             hint="save it with numpy.save") from None
        if x.ndim == len(want):
            x = x[None]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        from edgekit.data import eval_transform

        pre = artifact.manifest.preprocessing
        if not pre:
            raise UsageError("the artifact's manifest has no preprocessing to apply to an image",
                             path=artifact.path, hint="pass a preprocessed .npy instead")
        try:
            with Image.open(path) as im:
                x = eval_transform(pre)(im.convert("RGB")).numpy()[None]
        except (UnidentifiedImageError, OSError) as exc:
            raise UsageError(f"{path} is not a readable image ({exc})",
                             hint="pass a JPEG/PNG or a .npy array") from None
    else:
        raise UsageError(f"unknown input kind '{path.suffix}'",
                         hint="pass an image (.jpg, .png, ...) or a .npy array")
    if tuple(x.shape[1:]) != want:
        raise UsageError(f"input shape {tuple(x.shape)} does not fit the artifact's input "
                         f"(N, {', '.join(map(str, want))})", path=path,
                         hint="resize it, or pass an image and let the manifest's "
                              "preprocessing do it")
    if not np.isfinite(x).all():
        raise UsageError("the input has NaN/Inf values", path=path)
    return np.ascontiguousarray(x, dtype=np.float32)


def run_artifact(artifact: Artifact, x: np.ndarray, device: str = "local",
                 timeout: float = 1800.0, *, identity: Path | None = None,
                 known_hosts: Path | None = None, python: str = "python3") -> dict[str, Any]:
    """{outputs: [array...], runtime, device, machine, emulated}: the artifact's outputs on
    `device`, through the same collector `edgekit bench` uses there."""
    from edgekit.bench.collectors import AdbCollector, BenchConfig, SshCollector, collector_for

    collector = collector_for("local" if device == "host" else device, identity=identity,
                              known_hosts=known_hosts)
    cfg = BenchConfig(timeout=timeout, python=python)
    result: dict[str, Any]
    if artifact.manifest.format == "ekr" and isinstance(collector,
                                                         (SshCollector, AdbCollector)):
        from edgekit.bench import ekr_device

        result = ekr_device.outputs(artifact, collector, x, cfg)  # the runner, no Python
    else:
        result = collector.outputs(artifact.path, x, cfg)
    want = len(artifact.manifest.outputs)
    if len(result["outputs"]) != want or any(len(o) != len(x) for o in result["outputs"]):
        from edgekit.bench.collectors import DeviceError

        raise DeviceError(f"{result['device']} returned {len(result['outputs'])} outputs of "
                          f"{[len(o) for o in result['outputs']]} rows for {want} outputs of "
                          f"{len(x)} rows", hint="the device's runtime disagrees with the "
                          "manifest: rerun with `edgekit bench --device` to see its check")
    return result


def validate_on_device(artifact: Artifact, device: str, timeout: float = 1800.0, *,
                       identity: Path | None = None, known_hosts: Path | None = None,
                       python: str = "python3") -> Any:
    """The golden check with the outputs the device computes (ssh/adb: the agent, or for .ekr
    the pushed runner), bit-exactness included where golden.npz holds the integer reference."""
    from edgekit.validate import compare, with_exactness

    inputs, reference = artifact.load_golden()
    res = run_artifact(artifact, next(iter(inputs.values())), device, timeout, identity=identity,
                       known_hosts=known_hosts, python=python)
    got = dict(zip(reference, res["outputs"], strict=False))
    report = compare(reference, got, quant=artifact.manifest.quant,
                     runtime=f"{res['runtime']} on {res['device']} ({res['machine']})",
                     kinds=artifact.golden_kinds())
    return with_exactness(report, artifact.golden_exact(), got)
