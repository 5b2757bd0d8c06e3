"""Fashion-MNIST, the real labelled data available offline (Debian `dataset-fashion-mnist`):
60k train / 10k test, 28×28 grey, 10 classes, gzip IDX files. Used to train small configs of
each family and to measure int8 accuracy honestly (random weights have no real outliers)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from edgekit.errors import MissingDependency, UsageError

ROOT = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
           "Sneaker", "Bag", "Ankle boot")
_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
_IMAGES_MAGIC, _LABELS_MAGIC = 2051, 2049


def _read_idx(path: Path, magic: int, dims: int) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise MissingDependency("Fashion-MNIST is not installed", path=path,
                                hint="apt-get install dataset-fashion-mnist "
                                     "(scripts/bootstrap.sh does)") from None
    except (OSError, EOFError) as exc:
        raise UsageError(f"not a readable gzip IDX file ({exc})", path=path,
                         hint="reinstall dataset-fashion-mnist") from None
    header = 4 + 4 * dims
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise UsageError(f"not an IDX file with magic {magic}", path=path,
                         hint="reinstall dataset-fashion-mnist")
    shape = struct.unpack(f">{dims}I", raw[4:header])
    data = np.frombuffer(raw, dtype=np.uint8, offset=header)
    if data.size != int(np.prod(shape)):
        raise UsageError(f"IDX payload has {data.size} bytes, header says {shape}", path=path,
                         hint="the file is truncated; reinstall dataset-fashion-mnist")
    return data.reshape(shape)


def load(split: str = "test", root: Path = ROOT) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels uint8 [N]) of the train or test split."""
    if split not in _FILES:
        raise UsageError(f"unknown Fashion-MNIST split '{split}'", hint="use train or test")
    images_file, labels_file = _FILES[split]
    images = _read_idx(Path(root) / images_file, _IMAGES_MAGIC, 3)
    labels = _read_idx(Path(root) / labels_file, _LABELS_MAGIC, 1)
    if len(images) != len(labels):
        raise UsageError(f"{len(images)} images but {len(labels)} labels", path=root,
                         hint="reinstall dataset-fashion-mnist")
    return images, labels


def to_model_input(images: np.ndarray, size: int = 64,
                   mean: tuple[float, ...] = (0.5, 0.5, 0.5),
                   std: tuple[float, ...] = (0.5, 0.5, 0.5)) -> np.ndarray:
    """uint8 [N, 28, 28] -> float32 [N, 3, size, size]: bilinear upsample, grey replicated to 3
    channels, normalised with the model's mean/std."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    # torch.tensor copies: the IDX buffer is read-only
    x = torch.tensor(images, dtype=torch.float32).div_(255.0).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = x.expand(-1, 3, -1, -1)
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous().numpy().astype(np.float32)
