"""Padded text batches for the tiny BERT's raw ONNX export (fixture ``tiny_bert_raw`` in
this folder's conftest.py)."""

from __future__ import annotations

TEXTS = [
    "the cat sat on the mat",
    "a much longer sentence about models that are compressed and shipped to the edge",
    "hello",
    "quantized encoders run on small cpus",
]


def text_feeds(bundle, texts: list[str]) -> dict:
    """One batch of ``texts``, padded to the longest (attention_mask 0 on the padding)."""
    from edgecompress.model import tokenize

    return tokenize(bundle.tokenizer_dir, texts, bundle.io, 64)
