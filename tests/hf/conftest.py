"""Tiny random-init transformers folders, one per family member, saved with save_pretrained:
image classifiers (ViT, ResNet, ConvNeXt) with a preprocessor_config.json, sequence
classifiers (BERT, DistilBERT) with a WordPiece tokenizer.json built like build_tiny_bert."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import write_wordpiece

os.environ.setdefault("USE_TF", "0")

LABELS = {0: "cat", 1: "dog", 2: "bird"}
TEXT_LABELS = {0: "negative", 1: "positive"}


def _labelled(names: dict) -> dict:
    return {
        "num_labels": len(names),
        "id2label": names,
        "label2id": {v: k for k, v in names.items()},
    }


def save(model, folder: Path, preprocessor: dict | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


VIT_PROCESSOR = {
    "image_processor_type": "ViTImageProcessor",
    "do_resize": True,
    "size": {"height": 32, "width": 32},
    "resample": 2,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}
CONVNEXT_PROCESSOR = {  # what microsoft/resnet-50 and facebook/convnext-* ship, scaled down
    "image_processor_type": "ConvNextImageProcessor",
    "do_resize": True,
    "size": {"shortest_edge": 32},
    "crop_pct": 0.875,
    "resample": 3,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.485, 0.456, 0.406],
    "image_std": [0.229, 0.224, 0.225],
}


def build_vit(folder: Path) -> Path:
    import torch
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        **_labelled(LABELS),
    )
    return save(ViTForImageClassification(config), folder, VIT_PROCESSOR)


def build_resnet(folder: Path) -> Path:
    import torch
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(
        embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1], layer_type="basic",
        **_labelled(LABELS),
    )  # fmt: skip
    return save(ResNetForImageClassification(config), folder, CONVNEXT_PROCESSOR)


def build_convnext(folder: Path, processor: bool = True) -> Path:
    import torch
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    config = ConvNextConfig(
        hidden_sizes=[16, 32], depths=[1, 1], num_stages=2, image_size=32, **_labelled(LABELS)
    )
    model = ConvNextForImageClassification(config)
    return save(model, folder, CONVNEXT_PROCESSOR if processor else None)


def build_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    vocab = write_wordpiece(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=256, **_labelled(TEXT_LABELS),
    )  # fmt: skip
    return save(BertForSequenceClassification(config), folder)


def build_distilbert(folder: Path) -> Path:
    import torch
    from transformers import DistilBertConfig, DistilBertForSequenceClassification

    vocab = write_wordpiece(folder)
    torch.manual_seed(0)
    config = DistilBertConfig(
        vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
        max_position_embeddings=256, **_labelled(TEXT_LABELS),
    )  # fmt: skip
    return save(DistilBertForSequenceClassification(config), folder)


BUILDERS = {
    "vit": build_vit,
    "resnet": build_resnet,
    "convnext": build_convnext,
    "bert": build_bert,
    "distilbert": build_distilbert,
}


@pytest.fixture(scope="session")
def hf_family_dir(tmp_path_factory):
    """``hf_family_dir(name)``: the folder of a tiny model (built once per session)."""
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = BUILDERS[name](tmp_path_factory.mktemp(f"hf-{name}"))
        return built[name]

    return get
