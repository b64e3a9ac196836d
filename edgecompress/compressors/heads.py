"""Attention-head pruning for Hugging Face encoders (BERT-style text encoders and ViT).

Heads are scored by the L2 norm of their slice of the attention output projection (the head's
whole contribution to the residual stream goes through it) and removed with transformers'
own ``prune_heads``, which physically shrinks the Q/K/V and output projections and records
the heads in ``config.pruned_heads`` (so ``from_pretrained`` rebuilds the pruned shapes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    from torch import nn


def find_encoder(module: nn.Module):
    """(model, base model, encoder layers) of the outermost HF encoder inside ``module``."""
    for m in module.modules():
        base = getattr(m, "base_model", None)
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if layers is not None and hasattr(m, "prune_heads") and hasattr(m, "config"):
            return m, base, layers
    return None


def encoder_layers(module: nn.Module):
    found = find_encoder(module)
    if found is None:
        raise CompressorError(
            "head pruning needs a Hugging Face encoder (BERT-style or ViT: base_model.encoder"
            f".layer and prune_heads); {type(module).__name__} holds none"
        )
    return found


def self_attention(layer: nn.Module) -> nn.Module:
    """BERT names it ``attention.self``, ViT ``attention.attention``."""
    attn = layer.attention
    return getattr(attn, "self", None) or attn.attention


def head_scores(layer: nn.Module) -> list[float]:
    """One importance score per remaining head of one encoder layer."""
    attn = self_attention(layer)
    n, d = attn.num_attention_heads, attn.attention_head_size
    w = layer.attention.output.dense.weight.detach()
    return [float(w[:, h * d : (h + 1) * d].norm()) for h in range(n)]


def prune_heads(module: nn.Module, amount: float, skip=lambda index: False) -> list[dict]:
    """Remove the ``amount`` least important heads of every layer (but ``skip(i)`` ones)."""
    model, base, layers = encoder_layers(module)
    total = base.config.num_attention_heads
    to_prune: dict[int, list[int]] = {}
    rows = []
    for i, layer in enumerate(layers):
        scores = head_scores(layer)
        n = len(scores)
        remove = 0 if skip(i) else min(int(amount * n + 1e-9), n - 1)
        alive = sorted(set(range(total)) - set(layer.attention.pruned_heads))
        worst = sorted(range(n), key=lambda h: scores[h])[:remove]
        if remove:
            to_prune[i] = [alive[h] for h in worst]
        rows.append(
            {
                "layer": i,
                "heads_before": n,
                "heads_after": n - remove,
                "pruned": sorted(to_prune.get(i, [])),
            }
        )
    if to_prune:
        model.prune_heads(to_prune)
    return rows
