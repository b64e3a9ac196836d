"""What ``task.data`` names, and loading it: a built-in name, ``pkg.module:function``, or a
path (a string, or a mapping with options) to arrays, images or a text table.

Paths are resolved against the recipe's folder; every file is read and checked before any work
starts. A malformed file raises DataFileError (exit 2) naming the file and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edgecompress.data.arrays import load_npy_folder, load_npz
from edgecompress.data.builtins import BUILTIN_DATASETS
from edgecompress.data.images import is_image_folder, load_images
from edgecompress.data.splits import DEFAULT_SEED, DataSplits
from edgecompress.data.tables import TABLE_SUFFIXES, load_tables, table_files
from edgecompress.errors import DataError, DataFileError
from edgecompress.imports import import_object

FORMATS = ("npz", "npy", "images", "csv", "jsonl", "parquet")
_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class DataSource(BaseModel):
    """``task.data`` as a mapping: a file or folder and how to read it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="a file or folder, relative to the recipe's folder")
    format: Literal[FORMATS] | None = Field(  # type: ignore[valid-type]
        None, description="npz, npy, images, csv, jsonl or parquet (default: from the path)"
    )
    text_column: str = Field("text", description="tables: the column holding the text")
    label_column: str = Field("label", description="tables: the label column (names or ints)")
    labels: list[str] | None = Field(
        None, min_length=1, description="class names in index order (others are refused)"
    )
    image_size: list[int] | None = Field(
        None, min_length=2, max_length=2, description="images: [H, W] (default: the first's)"
    )
    channels: Literal[1, 3] | None = Field(None, description="images: 1 (grey) or 3 (RGB)")


def parse_spec(value: Any) -> str | DataSource:
    """``task.data`` as given in a recipe: a string, or a mapping validated as DataSource."""
    if isinstance(value, DataSource | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return DataSource.model_validate(value)
    raise ValueError(
        "a built-in name, 'pkg.module:function', a path or a mapping {path: ...}, got "
        f"{type(value).__name__}"
    )


def is_path_spec(spec: str | DataSource | dict) -> bool:
    """Whether ``spec`` names a file or folder (neither a built-in nor a function)."""
    if not isinstance(spec, str):
        return True
    return spec not in BUILTIN_DATASETS and not _FUNCTION.match(spec)


def _bare(spec) -> bool:
    """A string that could be a dataset name: no path separator, dot or colon."""
    return isinstance(spec, str) and not any(c in spec for c in "/\\.:")


def resolve(spec: str | DataSource | dict, base_dir: Path | None) -> str | DataSource:
    """``spec`` with a relative path made absolute against ``base_dir`` (a recipe's folder)."""
    spec = parse_spec(spec)
    if not is_path_spec(spec):
        return spec
    source = spec if isinstance(spec, DataSource) else DataSource(path=spec)
    path = Path(source.path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    if _bare(spec) and not path.exists():
        return spec  # a misspelt built-in name, reported as such by load_dataset
    resolved = source.model_copy(update={"path": str(path)})
    return resolved if isinstance(spec, DataSource) else str(path)


def describe(spec: str | DataSource | dict) -> str | dict:
    """``spec`` as JSON for manifests (a string, or the mapping's fields that were set)."""
    spec = parse_spec(spec)
    return spec if isinstance(spec, str) else spec.model_dump(exclude_unset=True)


def _format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return suffix[1:]
    if suffix == ".npz":
        return "npz"
    if path.is_dir():
        tables = table_files(path)
        if tables:
            return tables[0].suffix[1:]
        return "images" if is_image_folder(path) else "npy"
    raise DataFileError(
        f"{path}: path: cannot tell the format (expected .npz, .csv, .jsonl, .parquet, a folder "
        "of .npy files or images; or set format)"
    )


def load_path(
    source: DataSource, seed: int = DEFAULT_SEED, need_labels: bool = False
) -> DataSplits:
    """A file or folder as DataSplits; ``need_labels``: a table without labels is refused."""
    path = Path(source.path)
    if not path.exists():
        raise DataFileError(f"{path}: path: no such file or folder")
    fmt = _format(path, source.format)
    if fmt == "npz":
        return load_npz(path, seed)
    if fmt == "npy":
        return load_npy_folder(path, seed, source.labels)
    if fmt == "images":
        return load_images(path, seed, source.image_size, source.channels, source.labels)
    files = table_files(path) if path.is_dir() else [path]
    if not files:
        raise DataFileError(f"{path}: path: no train/val/test {fmt} files in this folder")
    need = need_labels or "label_column" in source.model_fields_set  # named: required
    label = source.label_column
    return load_tables(files, seed, source.text_column, label, need, source.labels)


def load_function(spec: str) -> DataSplits:
    loader = import_object(spec, what="dataset")
    result = loader()
    if isinstance(result, dict):
        try:
            result = DataSplits(spec, result["train"], result["val"], result["test"])
        except KeyError as exc:
            raise DataError(f"dataset {spec!r} returned no {exc.args[0]!r} split") from None
    if not isinstance(result, DataSplits):
        raise DataError(f"dataset {spec!r} must return DataSplits or a dict of Split")
    return result


def load_dataset(
    spec: str | DataSource | dict,
    seed: int = DEFAULT_SEED,
    base_dir: Path | None = None,
    need_labels: bool = False,
) -> DataSplits:
    """A built-in name, ``pkg.module:function``, or a path / DataSource (see module doc)."""
    spec = parse_spec(spec)
    if isinstance(spec, str) and spec in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[spec](seed=seed)
    if isinstance(spec, str) and _FUNCTION.match(spec):
        return load_function(spec)
    resolved = resolve(spec, base_dir)
    source = resolved if isinstance(resolved, DataSource) else DataSource(path=resolved)
    if _bare(spec) and not Path(source.path).exists():
        known = ", ".join(sorted(BUILTIN_DATASETS))
        raise DataFileError(
            f"unknown dataset {spec!r}: use a built-in ({known}), 'pkg.module:fn' or a path"
        )
    return load_path(source, seed, need_labels)
