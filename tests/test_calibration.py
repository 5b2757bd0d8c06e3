import numpy as np
import pytest
from PIL import Image

from edgekit.calibration import CalibrationError, CalibrationSet, calibration_set
from edgekit.data import builtin_photo_paths
from edgekit.errors import UsageError

CFG = {"input_size": (3, 64, 64), "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
       "crop_pct": 0.9, "interpolation": "bicubic"}


def test_builtin_photos_and_fmnist():
    photos = calibration_set("photos", CFG, n=10)
    assert photos.samples.shape == (10, 3, 64, 64) and len(set(photos.sources)) == 10
    fm = calibration_set("fmnist", CFG, n=16)
    assert fm.samples.shape == (16, 3, 64, 64) and fm.sources[0].startswith("train[")
    assert len(fm.batches(5)) == 4


def test_folder_of_real_images(tmp_path):
    for p in builtin_photo_paths()[:3]:
        with Image.open(p) as im:
            im.convert("RGB").resize((96, 80)).save(tmp_path / f"{p.stem}.jpg")
    (tmp_path / "notes.txt").write_text("not an image")
    cal = calibration_set(str(tmp_path), CFG)
    assert len(cal) == 3 and all(s.endswith(".jpg") for s in cal.sources)


def test_constant_image_is_refused_by_name(tmp_path):
    Image.new("RGB", (64, 64), (128, 128, 128)).save(tmp_path / "grey.png")
    with pytest.raises(CalibrationError, match=r"grey.png\) is constant"):
        calibration_set(str(tmp_path), CFG)


def test_nan_sample_is_refused_by_name():
    x = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    x[1, 0, 2, 2] = np.nan
    with pytest.raises(CalibrationError, match=r"sample 1 \(b.png\) contains NaN"):
        CalibrationSet("arrays", x, ("a.png", "b.png", "c.png"))


def test_bad_folders(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        calibration_set(str(tmp_path / "nope"), CFG)
    with pytest.raises(UsageError, match="no images"):
        calibration_set(str(tmp_path), CFG)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(CalibrationError, match="unreadable"):
        calibration_set(str(tmp_path), CFG)
