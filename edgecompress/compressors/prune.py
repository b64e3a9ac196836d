"""Pruning: unstructured magnitude (layer-wise or global), N:M patterns, structured channel
pruning that physically shrinks Conv/Linear layers, and attention-head pruning for BERT."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from edgecompress.compressors.common import (
    metric_stats,
    prunable_weights,
    size_bytes,
    sparsity,
    to_torch,
)
from edgecompress.compressors.finetune import finetune
from edgecompress.compressors.heads import prune_heads
from edgecompress.compressors.structured import apply_plans, find_plans
from edgecompress.errors import CompressorError
from edgecompress.registry import StepConfig, register_compressor

if TYPE_CHECKING:
    import torch


class PruneMethod(StrEnum):
    unstructured = "unstructured"
    structured = "structured"
    n_m = "n:m"
    heads = "heads"


class PruneScope(StrEnum):
    layer = "layer"
    global_ = "global"


class ChannelNorm(StrEnum):
    l1 = "l1"
    l2 = "l2"


class PruneConfig(StepConfig):
    """Prune weights, channels or attention heads, optionally fine-tuning afterwards."""

    method: PruneMethod = Field(PruneMethod.unstructured, description="What to remove.")
    amount: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="unstructured: target sparsity; structured: fraction of channels removed "
        "per prunable layer; heads: fraction of attention heads removed per layer.",
    )  # fmt: skip
    scope: PruneScope = Field(
        PruneScope.layer,
        description="unstructured: rank weights per layer ('layer') or across all ('global').",
    )
    n: int = Field(2, ge=1, description="n:m: weights kept in every group of m.")
    m: int = Field(4, ge=2, description="n:m: group size along the input dimension.")
    norm: ChannelNorm = Field(ChannelNorm.l1, description="structured: filter norm ranking.")
    finetune_epochs: int = Field(0, ge=0, description="Epochs of fine-tuning after pruning.")
    lr: float = Field(1e-3, gt=0.0, description="Fine-tuning learning rate (AdamW).")
    batch_size: int = Field(32, ge=1, description="Fine-tuning batch size.")

    @model_validator(mode="after")
    def _n_below_m(self):
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be smaller than m ({self.m})")
        return self


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` largest of every ``m`` consecutive input weights of each output row."""
    import torch

    flat = weight.detach().reshape(weight.shape[0], -1)
    if flat.shape[1] % m:
        raise ValueError(f"{flat.shape[1]} inputs are not a multiple of m={m}")
    groups = flat.abs().reshape(flat.shape[0], -1, m)
    idx = groups.topk(n, dim=-1).indices
    mask = torch.zeros_like(groups).scatter_(-1, idx, 1.0)
    return mask.reshape(weight.shape)


def _apply_masks(module, config: PruneConfig) -> list[str]:
    """Attach torch.nn.utils.prune masks; returns the layers skipped (n:m misfits)."""
    import torch.nn.utils.prune as tprune

    layers = prunable_weights(module)
    if not layers:
        raise CompressorError("pruning: the model has no Conv/Linear weights to prune")
    skipped = []
    if config.method == PruneMethod.n_m:
        for name, layer in layers:
            inputs = layer.weight[0].numel()
            if inputs % config.m:
                skipped.append(name)
                continue
            tprune.custom_from_mask(layer, "weight", nm_mask(layer.weight, config.n, config.m))
    elif config.scope == PruneScope.global_:
        params = [(layer, "weight") for _, layer in layers]
        tprune.global_unstructured(params, tprune.L1Unstructured, amount=config.amount)
    else:
        for _, layer in layers:
            tprune.l1_unstructured(layer, "weight", amount=config.amount)
    return skipped


def _make_permanent(module) -> None:
    import torch.nn.utils.prune as tprune

    for _, layer in prunable_weights(module):
        if tprune.is_pruned(layer):
            tprune.remove(layer, "weight")


def _prune_module(bundle, config: PruneConfig) -> tuple[object, dict]:
    module = bundle.clone_module()
    stats: dict = {"method": config.method.value, "amount": config.amount}
    if config.method == PruneMethod.structured:
        plans = find_plans(module, to_torch(bundle, bundle.example_inputs))
        if not plans:
            raise CompressorError("structured pruning: no prunable Conv/Linear chain found")
        stats["layers"] = apply_plans(module, plans, config.amount, config.norm.value)
    elif config.method == PruneMethod.heads:
        stats["layers"] = prune_heads(module, config.amount)
    else:
        stats["scope"] = config.scope.value if config.method == PruneMethod.unstructured else None
        stats["skipped_layers"] = _apply_masks(module, config)
    return module, stats


@register_compressor("prune", PruneConfig)
def prune(bundle, config: PruneConfig, ctx):
    """Prune weights (unstructured, N:M), channels (structured) or attention heads."""
    if bundle.module is None:
        raise CompressorError("prune needs a torch model (this bundle is ONNX-only)")
    before = ctx.evaluate_bundle(bundle)
    module, stats = _prune_module(bundle, config)
    pruned = bundle.replace(module=module.eval())
    stats["metric_after_prune"] = ctx.evaluate_bundle(pruned)["value"]
    if config.finetune_epochs:
        finetune(module, bundle, ctx, config.finetune_epochs, config.lr, config.batch_size,
                 reference=bundle.module)  # fmt: skip
    _make_permanent(module)
    after = ctx.evaluate_bundle(pruned)
    stats.update(metric_stats(ctx, before, after))
    stats.update(
        sparsity=round(sparsity(module), 6),
        size_bytes_before=size_bytes(bundle.module),
        size_bytes_after=size_bytes(module),
        finetune_epochs=config.finetune_epochs,
    )
    return pruned, stats
