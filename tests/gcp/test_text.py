"""A text model's function folder: tokenizer.json, the text section of io_spec.json, and
tokenizers pinned (MiniLM served for real: benchmarks/results/gcf-bundles.md)."""

from __future__ import annotations

import json
import warnings

import pytest

from edgecompress.gcp.bundle import build_gcf
from edgecompress.gcp.target import GcpTarget
from edgecompress.loaders import load_hf
from edgecompress.model import TaskKind, TaskSpec


@pytest.mark.slow  # builds a tiny BERT
def test_text_model_folder(tiny_bert_dir, tmp_path):
    import torch

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine", max_length=32)
    bundle = load_hf(tiny_bert_dir, task)
    names = bundle.io.input_names
    model = tmp_path / "bert.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            bundle.module.eval(),
            tuple(torch.from_numpy(bundle.example_inputs[n]) for n in names),
            str(model), dynamo=False, input_names=names, output_names=bundle.io.output_names,
            dynamic_axes=bundle.io.dynamic_axes(), opset_version=17,
        )  # fmt: skip
    options = GcpTarget(self_check=False)
    built = build_gcf(
        model, bundle.io, task, tmp_path / "out", options, tokenizer_dir=tiny_bert_dir
    )
    folder = built.path
    assert folder.name == "gcf-python312" and (folder / "tokenizer.json").is_file()
    spec = json.loads((folder / "io_spec.json").read_text())
    assert spec["task"] == "embedding" and spec["text"]["max_length"] == 32
    assert spec["text"]["pad_token"] == "[PAD]" and spec["text"]["pad_id"] == 0
    assert built.versions["tokenizers"] == "0.23.3" and built.versions["numpy"] == "2.5.5"
    assert "tokenizers==0.23.3" in (folder / "requirements.txt").read_text()
    assert '{"texts": ["A small model answers quickly."]}' in (folder / "README.md").read_text()
    assert built.self_check == {"skipped": "self_check=False"}
