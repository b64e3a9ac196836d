"""Factories without declared inputs take their input spec from the data; data that cannot
feed the model is refused before any work."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.data import DataSplits, Split, check_fits, first_sample
from edgecompress.errors import DataFileError, ModelLoadError
from edgecompress.loaders import load_factory
from edgecompress.model import TaskSpec
from tests.data.conftest import write_pngs


def _images(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(30) % 3
    images = rng.uniform(0, 0.3, size=(30, 3, 12, 10)).astype(np.float32)
    images[np.arange(30), labels] += 0.6  # the class is the brightest channel
    return write_pngs(tmp_path / "rgb", images, labels, ["red", "green", "blue"])


def test_residual_cnn_without_inputs_runs_and_exports(tmp_path):
    _images(tmp_path)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "model: {factory: 'tests.data.models:residual_cnn'}\n"
        "task: {kind: classification, data: rgb}\n"
        "export: [onnx]\n"
    )
    result = CliRunner().invoke(cli, ["run", str(recipe), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["io"]["inputs"] == [
        {"name": "input", "dtype": "float32", "shape": ["batch", 3, 12, 10]}
    ]
    (variant,) = manifest["variants"]
    assert variant["validation"]["passed"] and variant["validation"]["max_abs_diff"] < 1e-4

    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "out" / variant["path"]))
    (declared,) = session.get_inputs()
    assert declared.name == "input" and declared.shape[1:] == [3, 12, 10]
    assert session.run(None, {"input": np.zeros((5, 3, 12, 10), np.float32)})[0].shape == (5, 3)


def test_declared_inputs_win_over_the_sample():
    sample = np.zeros((1, 3, 12, 10), np.float32)
    declared = [{"name": "pixels", "dtype": "float32", "shape": ["n", 3, 7, 7]}]
    bundle = load_factory(
        "tests.data.models:residual_cnn", None, TaskSpec(), inputs=declared, sample=sample
    )
    assert bundle.io.inputs[0].name == "pixels" and bundle.io.inputs[0].shape == ("n", 3, 7, 7)
    inferred = load_factory("tests.data.models:residual_cnn", None, TaskSpec(), sample=sample)
    assert inferred.io.inputs[0].shape == ("batch", 3, 12, 10)
    with pytest.raises(ModelLoadError, match="model.inputs: the model declares no inputs"):
        load_factory("tests.data.models:residual_cnn", None, TaskSpec(), sample=lambda: None)


def test_check_fits(digits_bundle):
    texts = DataSplits("t", *(Split(texts=["A b c."]) for _ in range(3)))
    assert first_sample(texts) is None
    with pytest.raises(DataFileError, match="task.data: t holds texts, and the model has no"):
        check_fits(digits_bundle, texts)
    ok = DataSplits("d", *(Split(x=np.zeros((2, 1, 8, 8), np.float32)) for _ in range(3)))
    check_fits(digits_bundle, ok)
    assert first_sample(ok).shape == (1, 1, 8, 8)
    big = DataSplits("b", *(Split(x=np.zeros((2, 1, 9, 8), np.float32)) for _ in range(3)))
    with pytest.raises(DataFileError, match=r"b: x: samples of shape \[1, 9, 8\] do not fit"):
        check_fits(digits_bundle, big)
    text_model = digits_bundle.replace(tokenizer_dir=".")
    with pytest.raises(DataFileError, match="d holds tensors, and the model is a text model"):
        check_fits(text_model, ok)
