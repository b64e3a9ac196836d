"""Fixtures for the compressor tests: the shipped digits CNN on real data, a tiny BERT."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("USE_TF", "0")  # transformers must not import tensorflow (~5 s)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def digits_data():
    from edgecompress.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def digits_bundle():
    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    return load_factory(
        "edgecompress.zoo:digits_cnn", "package://edgecompress.zoo/digits_cnn.pt", TaskSpec()
    )


@pytest.fixture
def run_ctx(digits_data, digits_bundle, tmp_path):
    from edgecompress.context import RunContext

    ctx = RunContext(data=digits_data, work_dir=tmp_path)
    ctx.set_baseline(digits_bundle)
    return ctx


def _vocab() -> list[str]:
    from collections import Counter

    from edgecompress.data import english_sentences

    words = Counter(
        w.strip(".,;:!?()'\"").lower() for s in english_sentences()[:2000] for w in s.split()
    )
    common = [w for w, _ in words.most_common(400) if w.isalpha()]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(common)]


def build_tiny_bert(folder, layers: int = 6) -> None:
    """A randomly initialised 6-layer BERT (hidden 32, 4 heads) plus a WordPiece tokenizer."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel

    vocab = {w: i for i, w in enumerate(_vocab())}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_attention_heads=4, num_hidden_layers=layers,
        intermediate_size=64, max_position_embeddings=128,
    )  # fmt: skip
    BertModel(config).eval().save_pretrained(str(folder))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_bert")
    build_tiny_bert(folder)
    return folder


@pytest.fixture(scope="session")
def sentences_data():
    from edgecompress.data import load_sentences

    return load_sentences()


@pytest.fixture(scope="session")
def bert_bundle(tiny_bert_dir):
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    return load_hf(tiny_bert_dir, TaskSpec(kind=TaskKind.embedding, data="sentences",
                                           metric="cosine", max_length=48))
