"""Folder layouts shared by image and array folders: ``root/<class>/<file>`` (labels from the
folder names), or ``root/train|val|test/<class>/<file>`` (splits given), or files directly in
``root`` (no labels)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecompress.data.splits import SPLITS, DataSplits, Split, encode_each, split_whole
from edgecompress.errors import DataFileError

ReadFn = Callable[[Path], np.ndarray]


def has_split_folders(root: Path) -> bool:
    return (root / "train").is_dir()


def walk(root: Path, suffixes: tuple[str, ...]) -> list[tuple[Path, str | None]]:
    """(file, class folder or None) under ``root``, sorted; hidden files skipped."""
    found: list[tuple[Path, str | None]] = []
    for path in sorted(root.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            found += [
                (f, path.name)
                for f in sorted(path.iterdir())
                if f.is_file() and f.suffix.lower() in suffixes and not f.name.startswith(".")
            ]
        elif path.suffix.lower() in suffixes:
            found.append((path, None))
    return found


def stack(files: list[Path], read: ReadFn, field: str) -> np.ndarray:
    """The samples of ``files`` as one array; every sample must have the first one's shape."""
    arrays = []
    for path in files:
        array = read(path)
        if arrays and array.shape != arrays[0].shape:
            raise DataFileError(
                f"{path}: {field}: shape {list(array.shape)} differs from {files[0].name}'s "
                f"{list(arrays[0].shape)}"
            )
        arrays.append(array)
    return np.stack(arrays)


def load_folder(
    root: Path,
    suffixes: tuple[str, ...],
    read: ReadFn,
    seed: int,
    field: str,
    classes: list[str] | None = None,
) -> DataSplits:
    """A folder of sample files as splits (60/20/20 with ``seed`` unless it has train/)."""
    parts = [root / s for s in SPLITS] if has_split_folders(root) else [root]
    listed = []
    for part in parts:
        files = walk(part, suffixes) if part.is_dir() else []
        if not files:
            raise DataFileError(f"{part}: {field}: no {'/'.join(suffixes)} files")
        listed.append(files)
    labelled = [c is not None for files in listed for _, c in files]
    if any(labelled) and not all(labelled):
        loose = next(f for files in listed for f, c in files if c is None)
        raise DataFileError(f"{loose}: {field}: file outside a class folder (root/<class>/...)")
    labels, classes = (
        encode_each(
            [str(p) for p in parts], "class folder", [[c for _, c in f] for f in listed], classes
        )
        if all(labelled)
        else ([None] * len(listed), None)
    )
    splits = [
        Split(x=stack([f for f, _ in files], read, field), labels=y)
        for files, y in zip(listed, labels, strict=True)
    ]
    meta = {"source": str(root), "classes": classes} if classes else {"source": str(root)}
    if len(splits) == 1:
        return split_whole(root.name, splits[0], seed, meta)
    return DataSplits(root.name, *splits, meta={**meta, "split": "folders"})
