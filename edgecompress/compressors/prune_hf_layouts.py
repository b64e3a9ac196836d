"""Where each transformers ``model_type`` keeps its widths: which config fields hold them, and
which dimension of which parameter follows which width.

Axis labels (one per dimension of a parameter, ``None``: left whole):
``h`` the hidden (residual) width; per layer ``q`` the query/key channels (heads x head_dim),
``v`` the value channels (what the attention output projection reads), ``kv`` the key/value
channels of grouped-query attention (KV heads x head_dim), ``qkv`` GPT-2's packed
``[query | key | value]`` projection, ``i`` the MLP's intermediate channels. Rules match the end
of a parameter's name (so a ``bert.`` or ``roberta.`` prefix does not matter); ``(?P<l>\\d+)``
is the layer. A parameter no rule names must keep its shape in the pruned model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgecompress.errors import CompressorError

Axes = tuple[str | None, ...]
_L = r"\.(?P<l>\d+)\."


@dataclass(frozen=True)
class Layout:
    hidden: str  # config fields: hidden width, attention heads, MLP width
    heads: str
    intermediate: str
    rules: tuple[tuple[str, Axes], ...]
    query: str  # the parameters whose output the attention scale multiplies
    kv_heads: str | None = None  # grouped-query attention: KV heads field
    head_dim: str | None = None  # the config names head_dim itself: it never shrinks
    packed_qkv: bool = False  # GPT-2: c_attn (Conv1D, weight [in, out]) holds q, k, v

    def axes(self, name: str) -> tuple[Axes, int | None] | None:
        """(axis labels, layer index) of parameter ``name``; None when no rule names it."""
        for pattern, axes in self.rules:
            found = re.search(pattern, name)
            if found:
                layer = found.groupdict().get("l")
                return axes, None if layer is None else int(layer)
        return None


def _linear(pattern: str, out: str | None, inp: str | None) -> tuple[tuple[str, Axes], ...]:
    return ((pattern + r"\.weight$", (out, inp)), (pattern + r"\.bias$", (out,)))


def _norm(pattern: str) -> tuple[tuple[str, Axes], ...]:
    return ((pattern + r"\.(weight|bias)$", ("h",)),)


_BERT = (
    (r"embeddings\.(word|position|token_type)_embeddings\.weight$", (None, "h")),
    *_norm(r"embeddings\.LayerNorm"),
    *_linear(r"layer" + _L + r"attention\.self\.(query|key)", "q", "h"),
    *_linear(r"layer" + _L + r"attention\.self\.value", "v", "h"),
    *_linear(r"layer" + _L + r"attention\.output\.dense", "h", "v"),
    *_norm(r"layer" + _L + r"(attention\.)?output\.LayerNorm"),
    *_linear(r"layer" + _L + r"intermediate\.dense", "i", "h"),
    *_linear(r"layer" + _L + r"output\.dense", "h", "i"),
    *_linear(r"pooler\.dense", "h", "h"),
    *_linear(r"classifier\.dense", "h", "h"),  # RoBERTa's head
    (r"classifier(\.out_proj)?\.weight$", (None, "h")),
)

_VIT = (
    (r"embeddings\.(cls_token|position_embeddings|mask_token)$", (None, None, "h")),
    (r"embeddings\.patch_embeddings\.projection\.weight$", ("h", None, None, None)),
    (r"embeddings\.patch_embeddings\.projection\.bias$", ("h",)),
    *_linear(r"layer" + _L + r"attention\.attention\.(query|key)", "q", "h"),
    *_linear(r"layer" + _L + r"attention\.attention\.value", "v", "h"),
    *_linear(r"layer" + _L + r"attention\.output\.dense", "h", "v"),
    *_norm(r"layer" + _L + r"layernorm_(before|after)"),
    *_linear(r"layer" + _L + r"intermediate\.dense", "i", "h"),
    *_linear(r"layer" + _L + r"output\.dense", "h", "i"),
    *_norm(r"vit\.layernorm"),
    *_linear(r"pooler\.dense", "h", "h"),
    (r"classifier\.weight$", (None, "h")),
)

_DISTILBERT = (
    (r"embeddings\.(word|position)_embeddings\.weight$", (None, "h")),
    *_norm(r"embeddings\.LayerNorm"),
    *_linear(r"layer" + _L + r"attention\.(q|k)_lin", "q", "h"),
    *_linear(r"layer" + _L + r"attention\.v_lin", "v", "h"),
    *_linear(r"layer" + _L + r"attention\.out_lin", "h", "v"),
    *_norm(r"layer" + _L + r"(sa|output)_layer_norm"),
    *_linear(r"layer" + _L + r"ffn\.lin1", "i", "h"),
    *_linear(r"layer" + _L + r"ffn\.lin2", "h", "i"),
    *_linear(r"pre_classifier", "h", "h"),
    (r"classifier\.weight$", (None, "h")),
)

_GPT2 = (  # Conv1D: weight [in, out]
    (r"\.(wte|wpe)\.weight$", (None, "h")),
    *_norm(r"h" + _L + r"ln_(1|2)"),
    *_norm(r"ln_f"),
    (r"h" + _L + r"attn\.c_attn\.weight$", ("h", "qkv")),
    (r"h" + _L + r"attn\.c_attn\.bias$", ("qkv",)),
    (r"h" + _L + r"attn\.c_proj\.weight$", ("v", "h")),
    (r"h" + _L + r"attn\.c_proj\.bias$", ("h",)),
    (r"h" + _L + r"mlp\.c_fc\.weight$", ("h", "i")),
    (r"h" + _L + r"mlp\.c_fc\.bias$", ("i",)),
    (r"h" + _L + r"mlp\.c_proj\.weight$", ("i", "h")),
    (r"h" + _L + r"mlp\.c_proj\.bias$", ("h",)),
    (r"(lm_head|score)\.weight$", (None, "h")),
)

_LLAMA = (  # also Mistral, Qwen2 (q/k/v biases), Qwen3 (per-head q/k norms: head_dim stays)
    (r"embed_tokens\.weight$", (None, "h")),
    *_norm(r"layers" + _L + r"(input|post_attention)_layernorm"),
    (r"model\.norm\.weight$", ("h",)),
    *_linear(r"layers" + _L + r"self_attn\.q_proj", "q", "h"),
    *_linear(r"layers" + _L + r"self_attn\.(k|v)_proj", "kv", "h"),
    *_linear(r"layers" + _L + r"self_attn\.o_proj", "h", "q"),
    *_linear(r"layers" + _L + r"mlp\.(gate|up)_proj", "i", "h"),
    *_linear(r"layers" + _L + r"mlp\.down_proj", "h", "i"),
    (r"(lm_head|score)\.weight$", (None, "h")),
)

_BERTLIKE = dict(hidden="hidden_size", heads="num_attention_heads",
                 intermediate="intermediate_size")  # fmt: skip
_LLAMALIKE = Layout(**_BERTLIKE, rules=_LLAMA, query=r"self_attn\.q_proj\.",
                    kv_heads="num_key_value_heads", head_dim="head_dim")  # fmt: skip

LAYOUTS: dict[str, Layout] = {
    "bert": Layout(**_BERTLIKE, rules=_BERT, query=r"attention\.self\.query\."),
    "roberta": Layout(**_BERTLIKE, rules=_BERT, query=r"attention\.self\.query\."),
    "vit": Layout(**_BERTLIKE, rules=_VIT, query=r"attention\.attention\.query\."),
    "distilbert": Layout(
        hidden="dim",
        heads="n_heads",
        intermediate="hidden_dim",
        rules=_DISTILBERT,
        query=r"attention\.q_lin\.",
    ),  # fmt: skip
    "gpt2": Layout(
        hidden="n_embd",
        heads="n_head",
        intermediate="n_inner",
        rules=_GPT2,
        query=r"attn\.c_attn\.",
        packed_qkv=True,
    ),  # fmt: skip
    "llama": _LLAMALIKE,
    "mistral": _LLAMALIKE,
    "qwen2": _LLAMALIKE,
}


def layout_of(config) -> Layout:
    found = LAYOUTS.get(getattr(config, "model_type", ""))
    if found is None:
        raise CompressorError(
            f"structured pruning of the hidden width: model_type "
            f"{getattr(config, 'model_type', '?')!r} is not in the width table "
            f"(known: {', '.join(sorted(LAYOUTS))})"
        )
    return found
