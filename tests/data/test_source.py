"""``task.data`` through ``compress run``: every file format feeds a real model, and every
malformed file is refused with exit 2 naming the file and the field, nothing written."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.data import load_dataset, resolve
from edgecompress.errors import DataFileError
from tests.conftest import DIGITS_WEIGHTS
from tests.data.conftest import write_pngs, write_table

DIGITS_MODEL = f"{{factory: 'tests.data.models:digits_plain', weights: '{DIGITS_WEIGHTS}'}}"


def run(recipe, out):
    return CliRunner().invoke(cli, ["run", str(recipe), "-o", str(out)])


def write_digits(kind: str, root, x, y):
    """The digits in one of the array / image formats; returns task.data."""
    if kind == "npz":
        np.savez(root / "d.npz", x=x, y=y)
        return "d.npz"
    if kind == "npy":
        (root / "d").mkdir()
        np.save(root / "d" / "x.npy", x)
        np.save(root / "d" / "y.npy", y)
        return "d"
    write_pngs(root / "png", x, y, [f"digit{i}" for i in range(10)])
    return "png"


@pytest.mark.parametrize("kind", ["npz", "npy", "png"])
def test_digit_files_feed_a_factory_without_inputs(tmp_path, digits_all, kind):
    x, y = digits_all
    data = write_digits(kind, tmp_path, x[:600], y[:600])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {DIGITS_MODEL}\ntask: {{kind: classification, data: {data}}}\n")
    result = run(recipe, tmp_path / "out")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["io"]["inputs"] == [
        {"name": "input", "dtype": "float32", "shape": ["batch", 1, 8, 8]}
    ]
    # the trained digits CNN on 120 held-out files: the samples and labels were read aligned
    assert manifest["baseline"]["value"] > 0.93


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    from tests.conftest import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-cls"), layers=2, classifier=True)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_text_tables_feed_a_text_classifier(tmp_path, tiny_classifier, topics_rows, suffix):
    pair = {"import", "types"}
    rows = [{"sentence": t, "topic": n} for t, n in topics_rows * 2 if n in pair][:40]
    write_table(tmp_path / f"t{suffix}", rows)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"model: {{hf: {tiny_classifier}}}\n"
        f"task: {{kind: classification, data: {{path: t{suffix}, text_column: sentence, "
        "label_column: topic}, max_length: 32}\n"
    )
    result = run(recipe, tmp_path / "out")
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["task"]["data"]["path"] == str(tmp_path / f"t{suffix}")
    assert manifest["baseline"]["metric"] == "accuracy"
    assert 0.0 <= manifest["baseline"]["value"] <= 1.0


def _bad_npz(root):
    np.savez(root / "bad.npz", x=np.zeros((20, 1, 8, 8), np.float32), y=np.zeros(19))
    return "bad.npz", "bad.npz: y: shape [19]; expected [20]"


def _wrong_shape(root):
    np.savez(root / "big.npz", x=np.zeros((20, 3, 16, 16), np.float32), y=np.zeros(20))
    return "big.npz", "x: samples of shape [3, 16, 16] do not fit the model's input 'image'"


def _missing_column(root):
    write_table(root / "t.csv", [{"sentence": "A b c.", "label": 1}] * 5)
    return "t.csv", "t.csv: text_column: no column 'text' (columns: sentence, label)"


def _unknown_label(root):
    for split, label in (("train", "a"), ("val", "a"), ("test", "b")):
        write_table(root / f"{split}.jsonl", [{"text": "A b c.", "label": label}] * 2)
    return "'.'", "test.jsonl: label_column: unknown label 'b' (known: a)"


def _empty(root):
    (root / "e.csv").write_text("")
    return "e.csv", "e.csv: no rows"


def _unreadable_image(root):
    write_pngs(root / "img", np.zeros((4, 1, 8, 8)), np.arange(4) % 2, ["a", "b"])
    (root / "img" / "b" / "0001.png").write_bytes(b"garbage")
    return "img", "0001.png: image: unreadable"


@pytest.mark.parametrize(
    "make", [_bad_npz, _wrong_shape, _missing_column, _unknown_label, _empty, _unreadable_image]
)
def test_malformed_data_exits_2_naming_file_and_field(tmp_path, make):
    data, message = make(tmp_path)
    recipe = tmp_path / "r.yaml"
    factory = f"{{factory: 'edgecompress.zoo:digits_cnn', weights: '{DIGITS_WEIGHTS}'}}"
    recipe.write_text(f"model: {factory}\ntask: {{kind: classification, data: {data}}}\n")
    out = tmp_path / "out"
    result = run(recipe, out)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert f"{recipe}: task.data: " in result.output and message in result.output
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.")] == []


def test_recipe_schema_errors_name_the_field(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {factory: 'edgecompress.zoo:digits_cnn'}\n"
        "task: {data: {path: t.csv, text_colum: s}}\n"
    )
    result = run(recipe, tmp_path / "out")
    assert result.exit_code == 2
    assert "task.data.text_colum: unknown field (did you mean 'text_column'?)" in result.output


def test_paths_resolve_against_the_recipe_folder(tmp_path):
    assert resolve("digits", tmp_path) == "digits"
    assert resolve("pkg.mod:fn", tmp_path) == "pkg.mod:fn"
    assert resolve("d/x.csv", tmp_path) == str(tmp_path / "d" / "x.csv")
    source = resolve({"path": "t.csv", "text_column": "s"}, tmp_path)
    assert source.path == str(tmp_path / "t.csv") and source.text_column == "s"
    with pytest.raises(DataFileError, match=r"nope.csv: path: no such file or folder"):
        load_dataset("nope.csv", base_dir=tmp_path)
