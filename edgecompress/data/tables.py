"""Text tables: CSV (header row), JSONL (one object per line) and Parquet, one text per row
in ``text_column`` and an optional label in ``label_column`` (names or ints). A folder holding
``train.*``, ``val.*`` and ``test.*`` gives the splits; one file is split 60/20/20."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from edgecompress.data.splits import SPLITS, DataSplits, Split, encode_each, split_whole
from edgecompress.errors import DataFileError

TABLE_SUFFIXES = (".csv", ".jsonl", ".parquet")
MAX_FIELD = 1 << 20  # csv's per-field limit (a 1 MiB sentence is not a sentence)


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    csv.field_size_limit(MAX_FIELD)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"{path}: not a readable UTF-8 CSV file: {exc}") from None


def _read_jsonl(path: Path) -> tuple[list[str], list[dict]]:
    rows, columns = [], {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataFileError(f"{path}: not UTF-8 text") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise DataFileError(f"{path}: line {number}: not JSON ({exc})") from None
        if not isinstance(row, dict):
            raise DataFileError(
                f"{path}: line {number}: a JSON object per line, got {type(row).__name__}"
            )
        columns.update(dict.fromkeys(row))
        rows.append(row)
    return list(columns), rows


def _read_parquet(path: Path) -> tuple[list[str], list[dict]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError(f"{path}: Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataFileError(f"{path}: not a readable Parquet file: {first}") from None
    return list(table.column_names), table.to_pylist()


READERS = {".csv": _read_csv, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def read_table(path: Path, text_column: str, label_column: str | None, need_label: bool):
    """(texts, raw labels or None) of one table; refuses a missing column or an empty cell."""
    columns, rows = READERS[path.suffix.lower()](path)
    if not rows:
        raise DataFileError(f"{path}: no rows (an empty table)")
    for field, column in (("text_column", text_column), ("label_column", label_column)):
        if column is not None and column not in columns and (field == "text_column" or need_label):
            raise DataFileError(
                f"{path}: {field}: no column {column!r} (columns: {', '.join(map(str, columns))})"
            )
    texts = [row.get(text_column) for row in rows]
    _check_cells(path, "text_column", text_column, texts, str)
    if label_column is None or label_column not in columns:
        return texts, None
    labels = [row.get(label_column) for row in rows]
    _check_cells(path, "label_column", label_column, labels, (str, int))
    return texts, labels


def _check_cells(path: Path, field: str, column: str, values: list, kinds) -> None:
    for row, value in enumerate(values, 1):
        if isinstance(value, bool) or not isinstance(value, kinds) or value == "":
            shown = "empty" if value in ("", None) else f"a {type(value).__name__}"
            raise DataFileError(f"{path}: {field}: row {row} of column {column!r} is {shown}")


def table_files(root: Path) -> list[Path] | None:
    """train/val/test tables in a folder (one format), or None when it holds none."""
    for suffix in TABLE_SUFFIXES:
        if (root / f"train{suffix}").is_file():
            missing = [s for s in SPLITS if not (root / f"{s}{suffix}").is_file()]
            if missing:
                raise DataFileError(f"{root}: has train{suffix} but no {', '.join(missing)} file")
            return [root / f"{s}{suffix}" for s in SPLITS]
    return None


def load_tables(
    files: list[Path],
    seed: int,
    text_column: str = "text",
    label_column: str | None = "label",
    need_label: bool = False,
    classes: list[str] | None = None,
) -> DataSplits:
    """One table (split 60/20/20 with ``seed``) or three (train, val, test)."""
    read = [read_table(f, text_column, label_column, need_label) for f in files]
    has_labels = [labels is not None for _, labels in read]
    if any(has_labels) and not all(has_labels):
        missing = files[has_labels.index(False)]
        raise DataFileError(f"{missing}: label_column: no column {label_column!r}")
    meta: dict = {"source": str(files[0] if len(files) == 1 else files[0].parent)}
    encoded: list = [None] * len(files)
    if all(has_labels):
        encoded, classes = encode_each(
            [str(f) for f in files], "label_column", [lb for _, lb in read], classes
        )
        if classes:
            meta["classes"] = classes
    splits = [Split(texts=texts, labels=y) for (texts, _), y in zip(read, encoded, strict=True)]
    if len(splits) == 1:
        return split_whole(files[0].name, splits[0], seed, meta)
    return DataSplits(files[0].parent.name, *splits, meta={**meta, "split": "files"})
