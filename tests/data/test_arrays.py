"""Array files: .npz and folders of .npy, and the malformed ones refused by name."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.data import load_dataset
from edgecompress.errors import DataFileError


def test_npz_is_split_60_20_20_stratified(tmp_path, digits_all):
    x, y = digits_all
    np.savez(tmp_path / "d.npz", x=x.astype(np.float64), y=y.astype(np.int32))
    data = load_dataset(str(tmp_path / "d.npz"))
    assert (len(data.train), len(data.val), len(data.test)) == (1078, 359, 360)
    assert data.train.x.dtype == np.float32 and data.train.labels.dtype == np.int64
    assert data.test.x.shape[1:] == (1, 8, 8)
    counts = np.bincount(data.test.labels, minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # stratified: ~36 of each digit
    again = load_dataset(str(tmp_path / "d.npz"))
    np.testing.assert_array_equal(again.test.x, data.test.x)  # fixed seed


def test_npz_with_given_splits_and_no_labels(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"x_{s}": rng.standard_normal((n, 4)).astype(np.float32)
              for s, n in (("train", 7), ("val", 2), ("test", 3))}  # fmt: skip
    np.savez(tmp_path / "s.npz", **arrays)
    data = load_dataset(tmp_path / "s.npz")
    assert (len(data.train), len(data.val), len(data.test)) == (7, 2, 3)
    assert data.train.labels is None
    np.testing.assert_array_equal(data.val.x, arrays["x_val"])


def test_npy_folders(tmp_path, digits_all):
    x, y = digits_all
    (tmp_path / "xy").mkdir()
    np.save(tmp_path / "xy" / "x.npy", x[:100])
    np.save(tmp_path / "xy" / "y.npy", y[:100])
    assert sum(map(len, _parts(load_dataset(tmp_path / "xy")))) == 100
    for i in range(30):  # one sample per file, the class folder is the label
        folder = tmp_path / "per" / f"digit{y[i]}"
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{i}.npy", x[i])
    data = load_dataset(tmp_path / "per")
    assert data.train.x.shape[1:] == (1, 8, 8)
    assert data.meta["classes"] == sorted({f"digit{v}" for v in y[:30]})


def _parts(data):
    return data.train, data.val, data.test


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"features": np.zeros((5, 2))}, "x: missing (arrays: features)"),
        ({"x": np.zeros(5)}, "x: shape [5]; expected [samples, features...]"),
        ({"x": np.zeros((0, 3))}, "x: no samples"),
        ({"x": np.zeros((5, 2)), "y": np.zeros(4)}, "y: shape [4]; expected [5]"),
        ({"x": np.zeros((5, 2)), "y": np.zeros((5, 2))}, "y: shape [5, 2]; expected [5]"),
        ({"x": np.array([["a", "b"]] * 5)}, "x: dtype <U1 is not numeric"),
    ],
)
def test_malformed_npz(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match="bad.npz: ") as info:
        load_dataset(path)
    assert message in str(info.value)


def test_unreadable_and_pickled_arrays(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(DataFileError, match=r"junk.npz: not a readable .npz archive"):
        load_dataset(tmp_path / "junk.npz")
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataFileError, match="obj.npz: not a readable .npz"):
        load_dataset(tmp_path / "obj.npz")  # object arrays would need pickle: refused
    folder = tmp_path / "shapes"
    folder.mkdir()
    np.save(folder / "a.npy", np.zeros((1, 8, 8)))
    np.save(folder / "b.npy", np.zeros((1, 4, 4)))
    with pytest.raises(DataFileError, match=r"b.npy: x: shape \[1, 4, 4\] differs from a.npy"):
        load_dataset(folder)
