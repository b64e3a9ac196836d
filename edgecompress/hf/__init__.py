"""Hugging Face transformers models, loaded offline from a local folder, one module per family."""

from __future__ import annotations

from pathlib import Path

from edgecompress.hf.causal import load_causal_module
from edgecompress.hf.family import Family, family_of, read_config
from edgecompress.hf.text import load_text_module
from edgecompress.hf.vision import load_vision_module

__all__ = ["Family", "family_of", "load_hf_module"]


def load_hf_module(folder: Path):
    """(wrapped module, tokenizer folder or None, config) for the folder's family."""
    config = read_config(folder)
    family = family_of(config)
    if family in (Family.sentence_encoder, Family.text_classification):
        module, tokenizer_dir = load_text_module(folder, config)
        return module, tokenizer_dir, config
    if family == Family.causal_lm:
        module, tokenizer_dir = load_causal_module(folder, config)
        return module, tokenizer_dir, config
    if family == Family.image_classification:
        return load_vision_module(folder, config), None, config  # no tokenizer: pixels in
    raise AssertionError(f"no loader for family {family}")  # every Family has a branch
