"""Real images for validation and calibration, preprocessed with the model's own config.

Built-in photos ship inside installed wheels (scikit-learn's sample images, scikit-image's
bundled data folder); nothing is downloaded. Crops and flips of them make small sets.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import MissingDependency

# (package, relative path) of colour photographs bundled with the wheels.
_BUILTIN_PHOTOS = (
    ("sklearn", "datasets/images/china.jpg"),
    ("sklearn", "datasets/images/flower.jpg"),
    ("skimage", "data/astronaut.png"),
    ("skimage", "data/chelsea.png"),
    ("skimage", "data/coffee.png"),
    ("skimage", "data/rocket.jpg"),
    ("skimage", "data/motorcycle_left.png"),
)


def builtin_photo_paths() -> list[Path]:
    paths = []
    for package, rel in _BUILTIN_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        p = Path(list(spec.submodule_search_locations)[0]) / rel
        if p.is_file():
            paths.append(p)
    if not paths:
        raise MissingDependency("no built-in photos found (scikit-learn / scikit-image missing)",
                                hint="pip install 'edgekit[torch]'")
    return paths


def _views(img: Any, index: int) -> Any:
    """Deterministic variant `index` of a PIL image: full frame, crops, and mirrored crops."""
    from PIL import Image

    w, h = img.size
    # (left, top, right, bottom) as fractions of the frame, and whether to mirror first; eight
    # distinct views per photo so calibration (32) and its hold-out (16) need not repeat one.
    boxes = ((0.0, 0.0, 1.0, 1.0, False), (0.0, 0.0, 0.7, 0.7, False),
             (0.3, 0.3, 1.0, 1.0, False), (0.15, 0.15, 0.85, 0.85, True),
             (0.0, 0.0, 1.0, 1.0, True), (0.3, 0.0, 1.0, 0.7, False),
             (0.0, 0.3, 0.7, 1.0, True), (0.25, 0.25, 0.75, 0.75, False))
    left, top, right, bottom, mirror = boxes[index % len(boxes)]
    if mirror:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if (left, top, right, bottom) != (0.0, 0.0, 1.0, 1.0):
        img = img.crop((int(w * left), int(h * top), int(w * right), int(h * bottom)))
    return img


def eval_transform(data_config: dict[str, Any]) -> Any:
    """The model's own eval preprocessing (timm): resize, centre crop, normalise."""
    from timm.data import create_transform

    cfg = dict(data_config)
    return create_transform(
        input_size=tuple(cfg["input_size"]), interpolation=cfg.get("interpolation", "bicubic"),
        mean=tuple(cfg["mean"]), std=tuple(cfg["std"]), crop_pct=cfg.get("crop_pct", 0.875),
        crop_mode=cfg.get("crop_mode", "center"), is_training=False)


def photo_batch(data_config: dict[str, Any], n: int,
                paths: list[Path] | None = None) -> np.ndarray:
    """n real photos (and variants) as float32 NCHW, preprocessed by the model's eval transform."""
    from PIL import Image

    transform = eval_transform(data_config)
    paths = paths or builtin_photo_paths()
    out = []
    for i in range(n):
        with Image.open(paths[i % len(paths)]) as im:
            img = _views(im.convert("RGB"), i // len(paths))
            out.append(transform(img).numpy())
    return np.stack(out).astype(np.float32)


def golden_kinds(data_config: dict[str, Any], n: int, *, noise_fraction: float = 0.25
                 ) -> tuple[str, ...]:
    """What each of golden_inputs' n inputs is: "photo", "noise" (seeded N(0,1), after the
    photos) or, for Fashion-MNIST models, "test-image". Validation judges calibrated modes
    (int8, int-only) on the in-distribution ones only (validate.py)."""
    if data_config.get("dataset") == "fmnist":
        return ("test-image",) * n
    n_noise = int(round(n * noise_fraction))
    return ("photo",) * (n - n_noise) + ("noise",) * n_noise


def golden_inputs(data_config: dict[str, Any], n: int, *, seed: int = 0,
                  noise_fraction: float = 0.25) -> np.ndarray:
    """Validation inputs: real photos plus seeded N(0,1) noise in normalised space; for models
    trained on Fashion-MNIST, held-out test images (their domain)."""
    if data_config.get("dataset") == "fmnist":
        from edgekit import fashion_mnist as fm

        images, _ = fm.load("test")
        idx = np.random.default_rng(seed).choice(len(images), size=n, replace=False)
        return fm.to_model_input(images[idx], int(data_config["input_size"][-1]),
                                 tuple(data_config["mean"]), tuple(data_config["std"]))
    n_noise = int(round(n * noise_fraction))
    photos = photo_batch(data_config, n - n_noise)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_noise, *photos.shape[1:]), dtype=np.float32)
    return np.concatenate([photos, noise]) if n_noise else photos
