"""Image folders (PIL + numpy): class folders, split folders, and unreadable images."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.data import load_dataset
from edgecompress.errors import DataFileError
from tests.data.conftest import write_pngs

NAMES = [f"digit{i}" for i in range(10)]


def test_png_class_folders_round_trip(tmp_path, digits_all):
    x, y = digits_all
    root = write_pngs(tmp_path / "img", x[:200], y[:200], NAMES)
    data = load_dataset(root)
    assert (len(data.train), len(data.val), len(data.test)) == (120, 40, 40)
    assert data.meta["classes"] == NAMES
    assert data.train.x.shape[1:] == (1, 8, 8) and data.train.x.dtype == np.float32
    # every image is one of the written digits, within 8-bit rounding
    originals = x[:200].reshape(200, -1)
    for image, label in zip(data.test.x, data.test.labels, strict=True):
        nearest = np.abs(originals - image.reshape(1, -1)).max(1).argmin()
        assert np.abs(originals[nearest] - image.ravel()).max() <= 0.5 / 255 + 1e-6
        assert y[nearest] == label


def test_split_folders_rgb_jpg_and_resize(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2), ("test", 2)):
        images = rng.uniform(size=(n, 3, 12, 10)).astype(np.float32)
        write_pngs(tmp_path / "set" / split, images, np.arange(n) % 2, ["cat", "dog"], ".jpg")
    data = load_dataset({"path": str(tmp_path / "set"), "image_size": [6, 5]})
    assert (len(data.train), len(data.val), len(data.test)) == (4, 2, 2)
    assert data.train.x.shape == (4, 3, 6, 5)
    assert data.meta["split"] == "folders" and data.meta["classes"] == ["cat", "dog"]
    grey = load_dataset({"path": str(tmp_path / "set"), "channels": 1})
    assert grey.val.x.shape == (2, 1, 12, 10)


def test_unreadable_image_is_named(tmp_path, digits_all):
    x, y = digits_all
    root = write_pngs(tmp_path / "img", x[:20], y[:20], NAMES)
    bad = root / "digit3" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(DataFileError, match=r"broken.png: image: unreadable"):
        load_dataset(root)


def test_loose_file_beside_class_folders(tmp_path, digits_all):
    x, y = digits_all
    root = write_pngs(tmp_path / "img", x[:20], y[:20], NAMES)
    write_pngs(tmp_path / "loose", x[:1], np.zeros(1), ["x"])
    (tmp_path / "loose" / "x" / "0000.png").rename(root / "stray.png")
    with pytest.raises(DataFileError, match=r"stray.png: image: file outside a class folder"):
        load_dataset(root)
