"""Structured pruning of Hugging Face encoders (BERT-style text encoders, ViT): attention heads
and MLP intermediate channels, layer by layer, with the HF config kept in step.

Heads go through transformers' ``prune_heads`` (recorded in ``config.pruned_heads``, which
``from_pretrained`` re-applies, per layer). The MLP's intermediate channels are ranked by the
magnitude (or Taylor score) of their row in ``intermediate.dense`` plus their column in
``output.dense`` and removed from both. ``config.intermediate_size`` is one number for every
layer: when all layers keep the same width it is updated and ``save_pretrained`` /
``from_pretrained`` round-trip; when they differ (a layer left whole with ``skip``) the pruned
module still runs, but transformers cannot rebuild it from its config: save the module itself
(state_dict, .pt2, ONNX) instead. The hidden (residual) width is not pruned on this path: it
is taken when the hidden state is the model's output (a bare encoder, e.g. a sentence-embedding
model) or when ``skip`` leaves layers whole; a model with a head on top (a classifier) goes to
prune_hf instead, which shrinks the hidden width too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgecompress.compressors.heads import find_encoder, prune_heads
from edgecompress.compressors.targets import ChannelTargets, kept_channels, slice_scores

if TYPE_CHECKING:
    from torch import nn


def _layer_names(module: nn.Module, layers) -> list[str]:
    names = {id(m): name for name, m in module.named_modules()}
    return [names[id(layer)] for layer in layers]


def _skipped(module: nn.Module, layer: str, parts: tuple[str, ...], targets) -> bool:
    """Whether a skip pattern names the layer itself or a module inside one of its ``parts``."""
    prefixes = tuple(f"{layer}.{part}" for part in parts)
    return any(
        targets.skipped(name)
        for name, _ in module.named_modules()
        if name == layer or name.startswith(prefixes)
    )


def _mlp_scores(fc1: nn.Module, fc2: nn.Module, targets: ChannelTargets):
    """Per intermediate channel: its row of fc1 plus its column of fc2, each mean-normalised."""
    a = slice_scores(fc1.weight, 0, targets.norm, targets.taylor)
    b = slice_scores(fc2.weight, 1, targets.norm, targets.taylor)
    return a / a.mean().clamp_min(1e-12) + b / b.mean().clamp_min(1e-12)


def _prune_mlp(layer: nn.Module, targets: ChannelTargets) -> None:
    """Shrink one layer's intermediate width in place."""
    import torch
    import torch_pruning as tp

    fc1, fc2 = layer.intermediate.dense, layer.output.dense
    n = fc1.out_features
    keep = kept_channels(n, targets.amount, targets.round_to, targets.min_channels)
    if keep < n:
        remove = sorted(int(i) for i in torch.argsort(_mlp_scores(fc1, fc2, targets))[: n - keep])
        tp.prune_linear_out_channels(fc1, remove)
        tp.prune_linear_in_channels(fc2, remove)


def _sync_config(config, layers) -> str:
    """Write the new intermediate width into the HF config; say whether it can be reloaded."""
    widths = sorted({layer.intermediate.dense.out_features for layer in layers})
    if len(widths) == 1:
        config.intermediate_size = widths[0]
        return "save_pretrained/from_pretrained round-trip (uniform intermediate_size)"
    return (
        f"intermediate widths differ per layer {widths}: from_pretrained cannot rebuild them "
        "(one intermediate_size per config); save the module (state_dict, .pt2, ONNX)"
    )


def prune_encoder(module: nn.Module, targets: ChannelTargets) -> dict:
    """Prune heads and MLP channels of the HF encoder inside ``module``, in place."""
    model, _, layers = find_encoder(module)
    names = _layer_names(module, layers)
    keep_heads = [_skipped(module, n, ("attention",), targets) for n in names]
    heads = prune_heads(module, targets.heads, skip=lambda i: keep_heads[i])
    rows = []
    for name, layer, head in zip(names, layers, heads, strict=True):
        before = layer.intermediate.dense.out_features
        if not _skipped(module, name, ("intermediate", "output"), targets):
            _prune_mlp(layer, targets)
        rows.append({"layer": name, "heads_before": head["heads_before"],
                     "heads_after": head["heads_after"], "intermediate_before": before,
                     "intermediate_after": layer.intermediate.dense.out_features})  # fmt: skip
    return {"architecture": type(model).__name__, "layers": rows,
            "hf_config": _sync_config(model.config, layers)}  # fmt: skip
