"""Fixtures of the ONNX exporter tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_bert_raw(tiny_bert_dir, tmp_path_factory):
    """(raw TorchScript ONNX export of the 6-layer tiny BERT, its bundle)."""
    from edgecompress.exporters.onnx.export import export_module
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    bundle = load_hf(tiny_bert_dir, task)
    path = tmp_path_factory.mktemp("tiny-bert-raw") / "raw.onnx"
    export_module(bundle, bundle.module, path, 17, "torchscript")
    return path, bundle
