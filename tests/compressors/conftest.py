"""Fixtures for the compressor tests (digits, tiny BERT and run_ctx come from tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sentences_data():
    from edgecompress.data import load_sentences

    return load_sentences()


@pytest.fixture(scope="session")
def bert_bundle(tiny_bert_dir):
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    return load_hf(
        tiny_bert_dir,
        TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine", max_length=48),
    )
