"""Sequence classifiers (BERT, DistilBERT) from a local folder with no dataset of their own:
inspect, ONNX export (float and int8) validated against torch on the built-in sentences, and
a Lambda zip that answers text requests with label names."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.data import Split
from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.hf.text import label_names, text_parts
from edgecompress.metrics import score
from edgecompress.model import TaskKind, TaskSpec


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize(
    ("name", "inputs"),
    [("bert", ["input_ids", "attention_mask", "token_type_ids"]),
     ("distilbert", ["input_ids", "attention_mask"])],
)  # fmt: skip
def test_inspect_names_family_task_io_labels(hf_family_dir, name, inputs):
    result = invoke("inspect", hf_family_dir(name), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["family"] == "text-classification"
    assert summary["task"]["kind"] == "classification"  # the folder default was embedding
    assert summary["task"]["data"] == "sentences"
    assert [t["name"] for t in summary["io"]["inputs"]] == inputs
    assert summary["io"]["outputs"] == [
        {"name": "logits", "dtype": "float32", "shape": ["batch", 2]}
    ]
    assert summary["labels"] == {"0": "negative", "1": "positive"}


@pytest.mark.parametrize("name", ["bert", pytest.param("distilbert", marks=pytest.mark.slow)])
def test_export_without_data_validates_float_and_int8(hf_family_dir, tmp_path, name):
    """The issue's command: no --data, no dataset function (was: 'tensor datasets feed
    single-input models only')."""
    out = tmp_path / "out"
    result = invoke(
        "export", "onnx", hf_family_dir(name), "--task", "classification",
        "--quantize", "int8-dynamic", "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["task"]["data"] == "sentences"
    fp32, int8 = manifest["variants"]
    assert fp32["validation"]["max_abs_diff"] < 1e-4 and fp32["validation"]["samples"] > 500
    assert int8["validation"]["passed"] and int8["validation"]["cosine"] > 0.99
    assert int8["validation"]["metric"]["value"] >= 0.99  # top-1 agreement with torch
    assert int8["size_bytes"] < fp32["size_bytes"]
    facts = onnx_metadata.read(out / int8["path"])
    assert facts == {"family": "text-classification", "id2label": TEXT_NAMES}


TEXT_NAMES = {"0": "negative", "1": "positive"}


def test_unlabelled_accuracy_is_agreement_with_the_reference():
    split = Split(texts=["a", "b", "c", "d"])
    reference = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    outputs = np.array([[1, 0], [0, 1], [0, 1], [0, 1]], dtype=np.float32)
    assert score(TaskKind.classification, outputs, split, reference)["value"] == 0.75
    assert score(TaskKind.classification, outputs, split)["value"] == 1.0  # itself


def test_task_and_placeholder_labels():
    class Config:
        architectures = ["BertForSequenceClassification"]
        id2label = {0: "LABEL_0", 1: "LABEL_1"}

    assert label_names(Config) is None  # transformers' placeholders say nothing
    task, extra = text_parts(Config, TaskSpec(TaskKind.classification, "digits"))
    assert task.data == "sentences" and extra["family"] == "text-classification"
    task, _ = text_parts(Config, TaskSpec(TaskKind.classification, "my.pkg:reviews"))
    assert task.data == "my.pkg:reviews"  # the user's data is kept


@pytest.mark.slow
def test_lambda_zip_answers_texts_with_label_names(hf_family_dir, tmp_path):
    folder = hf_family_dir("bert")
    out = tmp_path / "export"
    assert invoke(
        "export", "onnx", folder, "--quantize", "int8-dynamic", "-o", out
    ).exit_code == 0  # fmt: skip
    result = invoke(
        "package", "lambda", out / "model.int8.onnx", "--tokenizer", folder, "--arch", "x86_64",
        "--python", "3.12", "-o", tmp_path / "zip", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    check = json.loads(result.stdout)["lambda"]["self_check"]
    if "skipped" in check:
        pytest.skip(check["skipped"])
    assert check["passed"]
    texts = [a for a in check["answers"] if "texts" in a["event"]]
    assert len(texts) == 2 and all(len(a["labels"]) == 2 for a in texts)
    _zip_answers_names(tmp_path / "zip", check["interpreter"])


def _zip_answers_names(zip_dir, interpreter: str):
    """The zip under awslambdaric answers a text request with the config's label names."""
    from edgecompress.awslambda.selfcheck import LocalFunction, ric_dir_for, unzip

    (zip_path,) = zip_dir.glob("lambda-*.zip")
    root = unzip(zip_path, zip_dir / "task")
    spec = json.loads((root / "io_spec.json").read_text())
    assert spec["id2label"] == TEXT_NAMES and spec["family"] == "text-classification"
    ric = ric_dir_for("3.12", zip_dir / "ric")
    with LocalFunction(root, ric, python="3.12", interpreter=interpreter) as fn:
        _kind, answer, _s = fn.invoke({"texts": ["a good film", "the worst film"]})
    assert answer["label_names"] == [TEXT_NAMES[str(i)] for i in answer["labels"]]
