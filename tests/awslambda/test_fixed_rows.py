"""Lambda zips of fixed-shape TFLite files (litert-torch: batch 1, fixed sequence length)."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from edgecompress.awslambda.fixed_rows import TEMPLATE, fixed_shapes, serving_io
from edgecompress.iospec import IOSpec, TensorSpec


def _rows_module():
    spec = importlib.util.spec_from_file_location("rows_template", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fixed_shapes_only_for_static_batch_one_files():
    static = IOSpec([TensorSpec("input_ids", "int32", (1, 128))], [])
    assert fixed_shapes(static) == {"input_ids": [1, 128]}
    assert fixed_shapes(IOSpec([TensorSpec("x", "float32", ("batch", 8))], [])) is None
    assert fixed_shapes(IOSpec([TensorSpec("x", "float32", (4, 8))], [])) is None


def test_serving_io_frees_batch_and_sequence():
    io = IOSpec(
        [TensorSpec("input_ids", "int32", (1, 128)), TensorSpec("image", "float32", (1, 1, 8, 8))],
        [TensorSpec("logits", "float32", (1, 2))],
    )
    free = serving_io(io, fixed_shapes(io))
    assert [s.shape for s in free.inputs] == [("batch", "sequence"), ("batch", 1, 8, 8)]
    assert free.outputs[0].shape == ("batch", 2) and free.inputs[0].dtype == "int32"


def test_rows_template_pads_cuts_and_concatenates():
    rows = _rows_module()
    seen = []

    def run(feeds):
        seen.append(feeds["ids"].tolist())
        return {"y": feeds["ids"].sum(1, keepdims=True)}

    wrapped = rows.wrap(run, {"ids": [1, 4]}, {"ids": 9})
    out = wrapped({"ids": np.array([[1, 2], [3, 4]])})
    assert seen == [[[1, 2, 9, 9]], [[3, 4, 9, 9]]] and out["y"].ravel().tolist() == [21, 25]
    rows.wrap(run, {"ids": [1, 2]})({"ids": np.array([[5, 6, 7]])})
    assert seen[-1] == [[5, 6]]


@pytest.mark.slow  # ~40 s idle: litert-torch conversion, wheels (cached after the first run), zip
def test_tflite_text_classifier_zip_answers_texts(tmp_path):
    from edgecompress.awslambda.bundle import build_lambda_zip
    from edgecompress.awslambda.options import LambdaTarget
    from edgecompress.context import RunContext
    from edgecompress.data import load_sentences
    from edgecompress.exporters.tflite.exporter import TFLiteConfig, export_tflite
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec
    from tests.conftest import build_tiny_bert

    folder = build_tiny_bert(tmp_path / "cls", layers=2, classifier=True)
    task = TaskSpec(kind=TaskKind.classification, data="sentences", max_length=32)
    bundle = load_hf(folder, task)
    data = load_sentences()
    labels = lambda s: np.array([len(t) % 2 for t in s.texts])  # noqa: E731
    for split in (data.train, data.val, data.test):
        split.labels = labels(split)
    config = TFLiteConfig(backend="litert-torch", quantize=["int8-dynamic"])
    (int8,) = export_tflite(bundle, config, RunContext(data, tmp_path), tmp_path / "out")
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    built = build_lambda_zip(
        int8.path, int8.io, task, tmp_path / "zip", LambdaTarget(arch="x86_64", python=python),
        tokenizer_dir=folder,
    )  # fmt: skip
    assert built.runtime == "litert" and built.zipped_bytes < 50 * 2**20
    assert built.self_check["passed"] is True
    events = {e["event"]: e for e in built.self_check["events"]}
    assert events["direct texts"]["min_cosine"]["logits"] >= 0.9999
    assert "tokenizers" in built.versions and "ai-edge-litert" in built.versions
