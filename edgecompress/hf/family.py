"""Which family a transformers folder belongs to, told apart by ``config.architectures``."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path

from edgecompress.errors import ModelLoadError

# transformers imports TensorFlow (~5 s) when it is installed unless told not to.
os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("USE_TORCH", "1")


class Family(str, Enum):
    sentence_encoder = "sentence-encoder"
    text_classification = "text-classification"
    causal_lm = "causal-lm"
    image_classification = "image-classification"


# Suffix of an architecture name -> family; the first match wins.
_SUFFIXES = (
    ("ForSequenceClassification", Family.text_classification),
    ("ForImageClassification", Family.image_classification),
    ("ForImageClassificationWithTeacher", Family.image_classification),  # DeiT distilled
    ("ForCausalLM", Family.causal_lm),
    ("LMHeadModel", Family.causal_lm),
)


def family_of(config) -> Family:
    """The family of a loaded ``transformers`` config (a bare encoder when nothing matches)."""
    for arch in config.architectures or []:
        for suffix, family in _SUFFIXES:
            if arch.endswith(suffix):
                return family
    return Family.sentence_encoder


def read_config(folder: Path):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"model.hf: {folder}/config.json cannot be read: {exc}") from None


def from_pretrained(auto_cls, folder: Path):
    """``auto_cls.from_pretrained`` offline, with eager attention (it exports to plain
    MatMul/Softmax, which ORT's optimizer fuses and torch.export lowers)."""
    try:
        return auto_cls.from_pretrained(
            str(folder), local_files_only=True, attn_implementation="eager"
        ).eval()
    except Exception as exc:
        raise ModelLoadError(f"model.hf: cannot load weights from {folder}: {exc}") from None
