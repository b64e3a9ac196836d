"""Array files: ``.npz`` (``x``, optional ``y``; or ``x_train``/``x_val``/``x_test`` with
``y_*``) and folders of ``.npy`` (``x.npy`` + ``y.npy``, or one sample per file, labelled by
class folder)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgecompress.data.folders import load_folder
from edgecompress.data.splits import SPLITS, DataSplits, Split, split_whole
from edgecompress.errors import DataFileError


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataFileError(f"{path}: not a readable .npy array: {_first(exc)}") from None


def _first(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_arrays(name: str, x: np.ndarray, y: np.ndarray | None, key: str = "x") -> Split:
    """``x`` [samples, ...] numeric, ``y`` one label per sample: a Split, or DataFileError."""
    if x.dtype.kind not in "biuf":
        raise DataFileError(f"{name}: {key}: dtype {x.dtype} is not numeric")
    if x.ndim < 2:
        raise DataFileError(
            f"{name}: {key}: shape {list(x.shape)}; expected [samples, features...] (2+ dims)"
        )
    if len(x) == 0:
        raise DataFileError(f"{name}: {key}: no samples (shape {list(x.shape)})")
    x = x.astype(np.float32) if x.dtype.kind == "f" or x.dtype.kind == "b" else x
    if y is None:
        return Split(x=x)
    ykey = "y" + key[1:]
    if y.dtype.kind not in "biuf":
        raise DataFileError(f"{name}: {ykey}: dtype {y.dtype} is not numeric")
    if y.ndim != 1 or len(y) != len(x):
        raise DataFileError(
            f"{name}: {ykey}: shape {list(y.shape)}; expected [{len(x)}] (one label per sample "
            f"of {key})"
        )
    y = y.astype(np.int64) if y.dtype.kind in "biu" else y.astype(np.float32)
    return Split(x=x, labels=y)


def _from_arrays(name: str, arrays: dict[str, np.ndarray], seed: int) -> DataSplits:
    if "x" in arrays:
        meta = {"source": name}
        return split_whole(
            Path(name).name, check_arrays(name, arrays["x"], arrays.get("y")), seed, meta
        )
    if all(f"x_{s}" in arrays for s in SPLITS):
        splits = [
            check_arrays(name, arrays[f"x_{s}"], arrays.get(f"y_{s}"), f"x_{s}") for s in SPLITS
        ]
        return DataSplits(Path(name).name, *splits, meta={"source": name, "split": "given"})
    raise DataFileError(
        f"{name}: x: missing (arrays: {', '.join(sorted(arrays)) or 'none'}); expected 'x' "
        "(+ optional 'y') or x_train, x_val, x_test"
    )


def load_npz(path: Path, seed: int) -> DataSplits:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"{path}: not a readable .npz archive: {_first(exc)}") from None
    return _from_arrays(str(path), arrays, seed)


def load_npy_folder(root: Path, seed: int, classes: list[str] | None = None) -> DataSplits:
    """``x.npy`` (+ ``y.npy``), or one ``.npy`` sample per file (class folders label them)."""
    if (root / "x.npy").is_file():
        arrays = {"x": _load_npy(root / "x.npy")}
        if (root / "y.npy").is_file():
            arrays["y"] = _load_npy(root / "y.npy")
        return _from_arrays(str(root / "x.npy"), arrays, seed)
    return load_folder(root, (".npy",), _load_npy, seed, "x", classes)
