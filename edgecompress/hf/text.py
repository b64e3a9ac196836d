"""Text families: sentence encoders and sequence classifiers (token ids in)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from edgecompress.errors import ModelLoadError
from edgecompress.hf.family import Family, family_of, from_pretrained
from edgecompress.model import TaskKind
from edgecompress.paths import cache_dir


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, L2-normalised: sentence-transformers' pooling."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(1)
    pooled = summed / mask.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, p=2, dim=1)


class HFEncoder(nn.Module):
    """Wraps a transformers encoder: token ids in, one normalised embedding per sentence out."""

    output_name = "sentence_embedding"

    def __init__(self, model: nn.Module, input_names: list[str]):
        super().__init__()
        self.model = model
        self.input_names = input_names

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.model(**kwargs).last_hidden_state
        return mean_pool(hidden, attention_mask)


class HFClassifier(HFEncoder):
    """Wraps a transformers sequence classifier: token ids in, logits out."""

    output_name = "logits"

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return self.model(**kwargs).logits


def _input_names(config) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if getattr(config, "type_vocab_size", 0):
        names.append("token_type_ids")
    return names


def ensure_tokenizer_json(folder: Path) -> Path:
    """The folder holding tokenizer.json (converted from vocab files into a cache if needed)."""
    if (folder / "tokenizer.json").exists():
        return folder
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"model.hf: {folder} has no usable tokenizer: {exc}") from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"model.hf: {folder}: only fast tokenizers (tokenizer.json) work")
    out = cache_dir("tokenizers") / folder.resolve().as_posix().strip("/").replace("/", "_")
    tokenizer.save_pretrained(str(out))
    return out


def load_text_module(folder: Path, config):
    """A text encoder (mean-pooled embedding) or a sequence classifier (logits)."""
    from transformers import AutoModel, AutoModelForSequenceClassification

    is_classifier = family_of(config) == Family.text_classification
    auto = AutoModelForSequenceClassification if is_classifier else AutoModel
    model = from_pretrained(auto, folder)
    wrapper_cls = HFClassifier if is_classifier else HFEncoder
    module = wrapper_cls(model, _input_names(config)).eval()
    return module, ensure_tokenizer_json(folder)


def label_names(config) -> dict[str, str] | None:
    """``config.id2label`` as {"0": name, ...}; None for transformers' LABEL_i placeholders."""
    names = {str(int(k)): str(v) for k, v in (getattr(config, "id2label", None) or {}).items()}
    if not names or all(v == f"LABEL_{k}" for k, v in names.items()):
        return None
    return names


def text_parts(config, task) -> tuple[object, dict]:
    """(task, extra) of a text model: a sequence classifier is a classification task (also
    under the CLI's folder default, embedding on sentences), and without data of its own it is
    checked on the built-in English sentences, unlabelled: accuracy is then top-1 agreement
    with the model being exported. ``extra`` names the family and the label names."""
    family = family_of(config)
    extra = {"family": family.value, "architecture": (config.architectures or [""])[0]}
    if family != Family.text_classification:
        return task, extra
    if task.kind == TaskKind.embedding and task.data == "sentences":
        task = dataclasses.replace(task, kind=TaskKind.classification, metric="accuracy")
    if task.kind == TaskKind.classification and task.data == "digits":  # the CLI's default
        task = dataclasses.replace(task, data="sentences")
    extra["id2label"] = label_names(config)
    return task, extra
