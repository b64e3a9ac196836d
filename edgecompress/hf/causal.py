"""Causal language models (``AutoModelForCausalLM``: GPT-2, Llama, Qwen2, SmolLM ...):
token ids and attention mask in, next-token logits for every position out.

The ONNX file carries a KV cache (TorchScript exporter, ``onnx_export_spec``): beside
``input_ids`` / ``attention_mask`` (covering past + new tokens) it takes
``past_key_values.{i}.key`` / ``.value`` ``[batch, kv_heads, past_sequence, head_dim]`` and
returns ``present.{i}.key`` / ``.value`` (past + new). One graph does both the prefill (a past of
length 0) and the single-token steps. Position ids come from the attention mask, so left- and
right-padded batches give the logits an unpadded run gives. The torch module itself keeps the
cache-less signature ``(input_ids, attention_mask) -> logits`` that validation runs.
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
PAST = "past_key_values.{}.{}"
PRESENT = "present.{}.{}"
# The mask's and the present's length, named as onnxruntime's symbolic shape inference writes
# the Concat of past and new (quantization pre-processing must see them as one dimension).
TOTAL = "past_sequence + sequence"


class CausalLM(nn.Module):
    """Wraps a transformers causal LM: ``(input_ids, attention_mask) -> logits``
    ``[batch, sequence, vocab]`` (float32), without a cache; ``step`` is the cached route the
    ONNX export traces (``onnx_export_spec``)."""

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

    def step(self, input_ids, attention_mask, *past):
        """One cached step: ``past`` is the flat ``(key_0, value_0, key_1, ...)`` of length
        ``2 * layers`` (sequence axis possibly 0); returns ``(logits, *present)``."""
        query = input_ids.shape[1]
        positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        positions = positions.index_select(1, last_rows(attention_mask, query))
        cache = dynamic_cache(past)
        out = self.model(
            input_ids=input_ids,
            attention_mask=additive_mask(attention_mask, query),
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        present = [t for layer in cache.layers for t in (layer.keys, layer.values)]
        return (out.logits.float(), *present)

    def cache_facts(self) -> dict:
        """Layers, KV heads and head size of the cache tensors (GQA: kv_heads < heads)."""
        config = self.model.config
        heads = int(config.num_attention_heads)
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        return {"layers": int(config.num_hidden_layers), "kv_heads": int(kv_heads),
                "head_dim": int(head_dim)}  # fmt: skip

    def onnx_export_spec(self):
        """What the TorchScript exporter exports instead of ``forward``: the cached step, with
        example inputs (batch 2, 3 new tokens after a past of 2) and dynamic axes."""
        facts = self.cache_facts()
        past_names, present_names = cache_names(facts["layers"])
        shape = (2, facts["kv_heads"], 2, facts["head_dim"])
        args = (
            torch.tensor([[5, 6, 7], [8, 9, 10]]),
            torch.ones(2, 5, dtype=torch.long),
            *[torch.randn(shape) * 0.1 for _ in past_names],
        )
        axes = {"input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: TOTAL},
                LM_OUTPUT: {0: "batch", 1: "sequence"}}  # fmt: skip
        axes.update({n: {0: "batch", 2: "past_sequence"} for n in past_names})
        axes.update({n: {0: "batch", 2: TOTAL} for n in present_names})
        names = (list(LM_INPUTS) + past_names, [LM_OUTPUT] + present_names)
        return _Step(self), args, names, axes

    @staticmethod
    def lm_parts(task: TaskSpec, inputs: list[TensorSpec], config, tokenizer_dir: Path):
        """What the loader records for a causal LM: its task, IO spec and generation facts."""
        io = IOSpec(inputs, output_specs(config))
        return lm_task(task), io, generation_config(config)


class _Step(nn.Module):
    """The cached step as a module's forward (what torch.onnx traces)."""

    def __init__(self, lm: CausalLM):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask, *past):
        return self.lm.step(input_ids, attention_mask, *past)


def cache_names(layers: int) -> tuple[list[str], list[str]]:
    """(past input names, present output names): key then value for each layer."""
    kinds = [(i, kind) for i in range(layers) for kind in ("key", "value")]
    return [PAST.format(*k) for k in kinds], [PRESENT.format(*k) for k in kinds]


def dynamic_cache(past):
    """A transformers DynamicCache holding ``past`` (flat key/value pairs) as it is: its own
    from_legacy_cache concatenates onto a 1-D empty tensor, which the ONNX graph cannot take."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    cache = DynamicCache()
    layers = []
    for key, value in zip(past[0::2], past[1::2], strict=True):
        layer = DynamicLayer()
        layer.lazy_initialization(key)
        layer.keys, layer.values = key, value
        layers.append(layer)
    cache.layers = layers
    return cache


def additive_mask(attention_mask, query: int | None = None):
    """The 4-D ``[batch, 1, query, key]`` float mask (0 where a query may attend, the float
    minimum elsewhere: causal and padding); the ``query`` rows are the last ones of the mask
    (a cached step: the past comes first). transformers takes a 4-D mask as it is; from a
    2-D one it builds this with torch.vmap, which the TorchScript ONNX exporter cannot trace
    ("unordered_map::at"; dynamo then takes ~20x longer)."""
    idx = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    rows = idx if query is None else last_rows(attention_mask, query)
    causal = idx[None, :] <= rows[:, None]
    allowed = causal[None, None] & (attention_mask[:, None, None, :] > 0)
    zeros = torch.zeros(allowed.shape, dtype=torch.float32, device=attention_mask.device)
    return zeros.masked_fill(~allowed, torch.finfo(torch.float32).min)


def last_rows(attention_mask, query: int):
    """The indices of the last ``query`` mask columns (the new tokens), as a range plus an
    offset: a Slice with a computed start leaves onnxruntime's symbolic shape inference
    (quantization pre-processing) unable to size the result."""
    offset = attention_mask.shape[-1] - query
    return torch.arange(query, device=attention_mask.device) + offset


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
