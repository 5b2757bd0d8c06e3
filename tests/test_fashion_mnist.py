import gzip

import numpy as np
import pytest

from edgekit import fashion_mnist
from edgekit.errors import MissingDependency, UsageError


def test_real_splits_load_with_balanced_labels():
    images, labels = fashion_mnist.load("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert np.bincount(labels).tolist() == [1000] * 10
    train_images, train_labels = fashion_mnist.load("train")
    assert train_images.shape == (60000, 28, 28) and np.bincount(train_labels).min() == 6000
    assert 60 < images.mean() < 90  # real photos of clothing, not noise


def test_model_input_preprocessing():
    images, _ = fashion_mnist.load("test")
    x = fashion_mnist.to_model_input(images[:4], size=64)
    assert x.shape == (4, 3, 64, 64) and x.dtype == np.float32
    assert np.array_equal(x[:, 0], x[:, 2]) and -1.0 <= x.min() and x.max() <= 1.0


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(MissingDependency, match="not installed"):
        fashion_mnist.load("test", root=tmp_path)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        with gzip.open(tmp_path / name, "wb") as f:
            f.write(b"\x00\x00\x08\x03" + b"\x00" * 12)
    with pytest.raises(UsageError, match="IDX"):
        fashion_mnist.load("test", root=tmp_path)
    with pytest.raises(UsageError, match="unknown Fashion-MNIST split"):
        fashion_mnist.load("validation")
