"""Causal language models (``AutoModelForCausalLM``: GPT-2, Llama, Qwen2, SmolLM ...):
token ids and attention mask in, next-token logits for every position out.

The exported graph has no KV cache: a generation loop runs the whole prefix again for each new
token (correct, O(n^2) in the sequence). Position ids come from the attention mask, so left- and
right-padded batches give the logits an unpadded run gives.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from edgecompress.hf.family import from_pretrained
from edgecompress.hf.text import ensure_tokenizer_json
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import TaskKind, TaskSpec

LM_INPUTS = ["input_ids", "attention_mask"]
LM_OUTPUT = "logits"


class CausalLM(nn.Module):
    """Wraps a transformers causal LM: ``(input_ids, attention_mask) -> logits``
    ``[batch, sequence, vocab]`` (float32), without a cache."""

    output_name = LM_OUTPUT

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.input_names = list(LM_INPUTS)

    def forward(self, input_ids, attention_mask):
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(
            input_ids=input_ids,
            attention_mask=additive_mask(attention_mask),
            position_ids=position_ids,
            use_cache=False,
        )
        return out.logits.float()

    @staticmethod
    def lm_parts(task: TaskSpec, inputs: list[TensorSpec], config, tokenizer_dir: Path):
        """What the loader records for a causal LM: its task, IO spec and generation facts."""
        io = IOSpec(inputs, output_specs(config))
        return lm_task(task), io, generation_config(config)


def additive_mask(attention_mask):
    """The 4-D ``[batch, 1, query, key]`` float mask (0 where a query may attend, the float
    minimum elsewhere: causal and padding). transformers takes a 4-D mask as it is; from a
    2-D one it builds this with torch.vmap, which the TorchScript ONNX exporter cannot trace
    ("unordered_map::at"; dynamo then takes ~20x longer)."""
    idx = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    causal = idx[None, :] <= idx[:, None]
    allowed = causal[None, None] & (attention_mask[:, None, None, :] > 0)
    zeros = torch.zeros(allowed.shape, dtype=torch.float32, device=attention_mask.device)
    return zeros.masked_fill(~allowed, torch.finfo(torch.float32).min)


def output_specs(config) -> list[TensorSpec]:
    """The logits' spec: the sequence axis is dynamic like the batch."""
    return [TensorSpec(LM_OUTPUT, "float32", ("batch", "sequence", int(config.vocab_size)))]


def lm_task(task: TaskSpec) -> TaskSpec:
    """A language model's task whatever the caller guessed: generation, scored by next-token
    agreement with the float model (and perplexity) on the built-in sentences unless a text
    dataset was named."""
    data = "sentences" if task.data in ("digits", "") else task.data
    return dataclasses.replace(
        task, kind=TaskKind.generation, data=data, metric="next_token_agreement"
    )


def generation_config(config) -> dict:
    """What a generation loop needs beside the graph: end-of-sequence id(s), the context
    window, the vocabulary size."""
    eos = getattr(config, "eos_token_id", None)
    eos_ids = [int(e) for e in (eos if isinstance(eos, list | tuple) else [eos]) if e is not None]
    window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", 0)
    return {
        "eos_token_ids": eos_ids,
        "bos_token_id": getattr(config, "bos_token_id", None),
        "context_length": int(window or 0) or None,
        "vocab_size": int(config.vocab_size),
    }


def load_causal_module(folder: Path, config) -> tuple[CausalLM, Path]:
    """The wrapped causal LM (eager attention, float32) and its tokenizer folder."""
    from transformers import AutoModelForCausalLM

    model = from_pretrained(AutoModelForCausalLM, folder).float()
    return CausalLM(model).eval(), ensure_tokenizer_json(folder)
