"""Attention-head pruning for Hugging Face BERT-style encoders (``bundle.module.model``).

Heads are scored by the L2 norm of their slice of the attention output projection (the head's
whole contribution to the residual stream goes through it) and removed with transformers'
own ``prune_heads``, which physically shrinks the Q/K/V and output projections.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    from torch import nn


def _encoder_layers(module: nn.Module):
    model = getattr(module, "model", None)
    base = getattr(model, "base_model", None)
    layers = getattr(getattr(base, "encoder", None), "layer", None)
    if model is None or layers is None or not hasattr(model, "prune_heads"):
        raise CompressorError(
            "head pruning needs a Hugging Face BERT-style encoder (module.model.encoder.layer "
            f"and prune_heads); {type(module).__name__} is not one"
        )
    return model, base, layers


def head_scores(layer: nn.Module) -> list[float]:
    """One importance score per remaining head of one encoder layer."""
    attn = layer.attention
    n, d = attn.self.num_attention_heads, attn.self.attention_head_size
    w = attn.output.dense.weight.detach()
    return [float(w[:, h * d : (h + 1) * d].norm()) for h in range(n)]


def prune_heads(module: nn.Module, amount: float) -> list[dict]:
    """Remove the ``amount`` least important heads of every layer, in place."""
    model, base, layers = _encoder_layers(module)
    total = base.config.num_attention_heads
    to_prune: dict[int, list[int]] = {}
    rows = []
    for i, layer in enumerate(layers):
        scores = head_scores(layer)
        n = len(scores)
        remove = min(int(amount * n + 1e-9), n - 1)
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
