"""Text tables (CSV, JSONL, Parquet): columns, labels as names or ints, malformed files."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.data import load_dataset
from edgecompress.errors import DataFileError
from tests.data.conftest import write_table

FORMATS = [".csv", ".jsonl", ".parquet"]


@pytest.mark.parametrize("suffix", FORMATS)
def test_named_columns_and_label_names(tmp_path, topics_rows, suffix):
    rows = [{"sentence": t, "topic": name, "id": i} for i, (t, name) in enumerate(topics_rows)]
    path = write_table(tmp_path / f"t{suffix}", rows)
    data = load_dataset({"path": str(path), "text_column": "sentence", "label_column": "topic"})
    names = sorted({name for _, name in topics_rows})
    assert data.meta["classes"] == names
    assert (len(data.train), len(data.val), len(data.test)) == (72, 24, 24)
    by_text = dict(topics_rows)
    for split in (data.train, data.val, data.test):
        assert [names[y] for y in split.labels] == [by_text[t] for t in split.texts]


@pytest.mark.parametrize("suffix", FORMATS)
def test_default_columns_int_labels_and_split_files(tmp_path, suffix):
    for split, n in (("train", 6), ("val", 3), ("test", 3)):
        rows = [{"text": f"{split} sentence {i}.", "label": i % 3} for i in range(n)]
        write_table(tmp_path / f"{split}{suffix}", rows)
    data = load_dataset(tmp_path)
    assert data.meta["split"] == "files" and "classes" not in data.meta
    assert data.val.texts == ["val sentence 0.", "val sentence 1.", "val sentence 2."]
    np.testing.assert_array_equal(data.train.labels, [0, 1, 2, 0, 1, 2])


def test_unlabelled_table_and_declared_labels(tmp_path):
    path = write_table(tmp_path / "u.jsonl", [{"text": f"Sentence {i}."} for i in range(10)])
    assert load_dataset(path).train.labels is None  # the default label column is optional
    rows = [{"text": f"Sentence {i}.", "label": ["b", "a"][i % 2]} for i in range(10)]
    path = write_table(tmp_path / "l.csv", rows)
    data = load_dataset({"path": str(path), "labels": ["b", "a"]})  # declared order wins
    assert data.meta["classes"] == ["b", "a"]
    assert {(t, int(y)) for t, y in zip(data.test.texts, data.test.labels, strict=True)} <= {
        (f"Sentence {i}.", i % 2) for i in range(10)
    }


@pytest.mark.parametrize("suffix", FORMATS)
def test_missing_column_and_empty_file(tmp_path, suffix):
    path = write_table(tmp_path / f"t{suffix}", [{"sentence": "A b c.", "label": 1}] * 5)
    with pytest.raises(DataFileError) as info:
        load_dataset(path)
    assert f"t{suffix}: text_column: no column 'text' (columns: sentence, label)" in str(info.value)
    with pytest.raises(DataFileError, match=r"label_column: no column 'topic'"):
        load_dataset({"path": str(path), "text_column": "sentence", "label_column": "topic"})
    empty = write_table(tmp_path / f"e{suffix}", [])
    with pytest.raises(DataFileError, match=rf"e{suffix}: no rows"):
        load_dataset(empty)


def test_unknown_label(tmp_path):
    write_table(tmp_path / "train.csv", [{"text": "A b.", "label": c} for c in "xyx"])
    write_table(tmp_path / "val.csv", [{"text": "A b.", "label": "x"}])
    write_table(tmp_path / "test.csv", [{"text": "A b.", "label": "z"}])
    with pytest.raises(DataFileError) as info:
        load_dataset(tmp_path)
    assert "test.csv: label_column: unknown label 'z' (known: x, y)" in str(info.value)
    rows = [{"text": "A b.", "label": v} for v in (0, 1, 2, 1, 0)]
    path = write_table(tmp_path / "ints.jsonl", rows)
    with pytest.raises(DataFileError, match=r"ints.jsonl: label_column: unknown label 2 \(labels"):
        load_dataset({"path": str(path), "labels": ["no", "yes"]})


def test_bad_cells_and_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "A b.", "label": 1}\n{"text": "oops"\n')
    with pytest.raises(DataFileError, match=r"bad.jsonl: line 2: not JSON"):
        load_dataset(path)
    path = write_table(
        tmp_path / "cell.csv", [{"text": "A b.", "label": 1}, {"text": "", "label": 0}]
    )
    with pytest.raises(
        DataFileError, match=r"cell.csv: text_column: row 2 of column 'text' is empty"
    ):
        load_dataset(path)
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(DataFileError, match=r"junk.parquet: not a readable Parquet file"):
        load_dataset(tmp_path / "junk.parquet")
