"""Tiny causal LM folders (GPT-2 and Llama architectures) with random weights and a byte-level
BPE tokenizer.json trained on real English sentences: what an exported LM is tested on."""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("USE_TF", "0")  # transformers would import TensorFlow (~5 s)

VOCAB = 1000
GPT2_SPECIALS = ["<|endoftext|>"]
LLAMA_SPECIALS = ["<unk>", "<s>", "</s>"]


def build_bpe_tokenizer(folder: Path, specials: list[str], bos: str | None = None) -> int:
    """A byte-level BPE tokenizer.json (vocabulary ``VOCAB``) trained on the built-in
    sentences; ``bos`` is prepended to every text (Llama style). Returns its vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    from edgecompress.data import english_sentences

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(english_sentences()[:1200], trainer)
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return tok.get_vocab_size()


def build_tiny_gpt2(folder: Path, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """GPT2LMHeadModel: hidden 32, 2 layers, 4 heads, vocabulary 1000, eos 0."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    vocab = build_bpe_tokenizer(folder, GPT2_SPECIALS)
    config = GPT2Config(
        vocab_size=vocab, n_embd=hidden, n_layer=layers, n_head=4, n_positions=128,
        bos_token_id=0, eos_token_id=0, initializer_range=0.2,
    )  # fmt: skip
    torch.manual_seed(seed)
    GPT2LMHeadModel(config).save_pretrained(str(folder))
    return folder


def build_tiny_llama(folder: Path, hidden: int = 48, layers: int = 2, seed: int = 0) -> Path:
    """LlamaForCausalLM: hidden 48 (so 48 % 32 != 0 for int4 blocks of 32 ... and 128 % 48
    checks the group fallback), 2 layers, 4 heads / 2 KV heads (grouped-query attention),
    intermediate 96, untied head, bos 1 / eos 2."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    vocab = build_bpe_tokenizer(folder, LLAMA_SPECIALS, bos="<s>")
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=128, bos_token_id=1, eos_token_id=2,
        tie_word_embeddings=False, initializer_range=0.2,
    )  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": 2}))
    return folder


def few_sentences():
    """A small split of the built-in sentences (``--data tests.hf.lm_models:few_sentences``):
    export tests validate on 24 sentences instead of ~600."""
    from edgecompress.data import DataSplits, Split, english_sentences

    texts = english_sentences()[-64:]
    return DataSplits("few-sentences", Split(texts=texts[:32]), Split(texts=texts[32:40]),
                      Split(texts=texts[40:64]))  # fmt: skip


_BUILT: dict[str, Path] = {}


def lm_dirs(tmp_path_factory) -> dict[str, Path]:
    """Both tiny LMs, built once per test session (``tmp_path_factory`` is session-scoped)."""
    if not _BUILT:
        root = tmp_path_factory.mktemp("tiny-lms")
        _BUILT.update(gpt2=build_tiny_gpt2(root / "gpt2"), llama=build_tiny_llama(root / "llama"))
    return dict(_BUILT)
