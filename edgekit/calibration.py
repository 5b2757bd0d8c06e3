"""Calibration data for quantization: real images, preprocessed like the model's eval input.

Sources: a folder of the user's images (`--calib DIR`), the built-in photos (scikit-learn /
scikit-image, with crops and flips), or Fashion-MNIST (`fmnist`, for the small configs trained
on it). Every sample is checked before any quantizer sees it: NaN/Inf or constant samples are
refused, naming the sample (a constant image carries no range information and collapses
min/max calibration).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import EdgekitError, UsageError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class CalibrationError(EdgekitError):
    code, stage, exit_code = "EK700", "calibrate", 2


@dataclass(frozen=True)
class CalibrationSet:
    name: str
    samples: np.ndarray  # float32 [N, C, H, W], preprocessed
    sources: tuple[str, ...]  # where each sample came from (file, photo variant, index)

    def __post_init__(self) -> None:
        check_samples(self.samples, self.sources)

    def __len__(self) -> int:
        return len(self.samples)

    def batches(self, batch: int) -> list[np.ndarray]:
        return [self.samples[i:i + batch] for i in range(0, len(self.samples), batch)]


def check_samples(samples: np.ndarray, sources: tuple[str, ...]) -> None:
    if samples.ndim != 4 or len(samples) == 0:
        raise CalibrationError(f"calibration data must be a non-empty [N, C, H, W] batch, got "
                               f"shape {samples.shape}", hint="pass images, a folder or fmnist")
    if len(sources) != len(samples):
        raise CalibrationError(f"{len(samples)} samples but {len(sources)} source names")
    for i, (x, src) in enumerate(zip(samples, sources, strict=True)):
        if not np.isfinite(x).all():
            raise CalibrationError(f"calibration sample {i} ({src}) contains NaN/Inf",
                                   hint="remove or fix that image; nothing was quantized")
        per_channel = x.reshape(x.shape[0], -1)
        if np.array_equal(per_channel.max(1), per_channel.min(1)):
            raise CalibrationError(f"calibration sample {i} ({src}) is constant "
                                   "(every channel holds a single value)",
                                   hint="use real, varied images; nothing was quantized")


def from_folder(folder: Path, data_config: dict[str, Any], n: int | None = None
                ) -> CalibrationSet:
    from PIL import Image, UnidentifiedImageError

    from edgekit.data import eval_transform

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError("calibration folder not found", path=folder,
                         hint="pass a folder of .jpg/.png images, `photos` or `fmnist`")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in the calibration folder",
                         path=folder, hint="add real images from your deployment domain")
    files = files[:n] if n else files
    transform = eval_transform(data_config)
    samples = []
    for f in files:
        try:
            with Image.open(f) as im:
                samples.append(transform(im.convert("RGB")).numpy())
        except (UnidentifiedImageError, OSError) as exc:
            raise CalibrationError(f"calibration image is unreadable ({exc})", path=f,
                                   hint="remove or replace the file") from None
    return CalibrationSet(str(folder), np.stack(samples).astype(np.float32),
                          tuple(str(f.relative_to(folder)) for f in files))


def builtin_photos(data_config: dict[str, Any], n: int = 32) -> CalibrationSet:
    from edgekit.data import builtin_photo_paths, photo_batch

    paths = builtin_photo_paths()
    samples = photo_batch(data_config, n, paths)
    sources = tuple(f"{paths[i % len(paths)].name}#view{i // len(paths)}" for i in range(n))
    return CalibrationSet("photos", samples, sources)


def fashion_mnist(data_config: dict[str, Any], n: int = 64, split: str = "train",
                  seed: int = 0) -> CalibrationSet:
    from edgekit import fashion_mnist as fm

    images, _ = fm.load(split)
    idx = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
    size = int(data_config["input_size"][-1])
    samples = fm.to_model_input(images[idx], size=size, mean=tuple(data_config["mean"]),
                                std=tuple(data_config["std"]))
    return CalibrationSet(f"fmnist-{split}", samples, tuple(f"{split}[{i}]" for i in idx))


def calibration_set(spec: str, data_config: dict[str, Any], n: int = 32) -> CalibrationSet:
    """`photos` (built-in), `fmnist`, or a folder path."""
    if spec == "photos":
        return builtin_photos(data_config, n)
    if spec == "fmnist":
        return fashion_mnist(data_config, n)
    return from_folder(Path(spec), data_config, n)
