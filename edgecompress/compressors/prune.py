"""Pruning: unstructured magnitude (layer-wise or global), N:M patterns, structured pruning that
physically shrinks the model (channel groups through the graph with Torch-Pruning; attention
heads and MLP channels of Hugging Face encoders), and attention-head pruning alone."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from edgecompress.compressors.common import (
    first_output,
    metric_stats,
    prunable_weights,
    shuffled_batches,
    size_bytes,
    sparsity,
    to_torch,
)
from edgecompress.compressors.distill import DistillConfig
from edgecompress.compressors.distill_train import train_student
from edgecompress.compressors.finetune import finetune, task_loss
from edgecompress.compressors.heads import prune_heads
from edgecompress.compressors.prune_channels import prune_structure
from edgecompress.compressors.prune_targets import (
    PruneTarget,
    RoundTo,
    reach_target,
    resolve_round_to,
    shares,
)
from edgecompress.compressors.targets import ChannelTargets
from edgecompress.errors import CompressorError
from edgecompress.model import TaskKind
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


class ChannelImportance(StrEnum):
    magnitude = "magnitude"
    taylor = "taylor"


class Recovery(StrEnum):
    finetune = "finetune"
    distill = "distill"


class PruneConfig(StepConfig):
    """Prune weights, channels or attention heads, optionally fine-tuning afterwards."""

    method: PruneMethod = Field(PruneMethod.unstructured, description="What to remove.")
    amount: float = Field(
        0.5, ge=0.0, lt=1.0,
        description="unstructured: target sparsity; structured: share of the channels removed "
        "from each channel group (HF encoders: of each MLP's intermediate channels); heads: "
        "share of attention heads removed per layer.",
    )  # fmt: skip
    scope: PruneScope = Field(
        PruneScope.layer,
        description="unstructured: rank weights per layer ('layer') or across all ('global').",
    )
    n: int = Field(2, ge=1, description="n:m: weights kept in every group of m.")
    m: int = Field(4, ge=2, description="n:m: group size along the input dimension.")
    norm: ChannelNorm = Field(
        ChannelNorm.l1, description="structured: magnitude ranking, summed over a group's layers."
    )
    importance: ChannelImportance = Field(
        ChannelImportance.magnitude,
        description="structured: rank channels by weight 'magnitude' or first-order 'taylor' "
        "(|weight x gradient| on calibration batches of the train split; labelled tasks).",
    )
    calibration_batches: int = Field(4, ge=1, description="structured/taylor: batches used.")
    target: PruneTarget | None = Field(
        None,
        description="structured: instead of amount, keep this share of the 'params', 'macs' "
        "or onnxruntime p50 'latency' (batch 1, one thread), e.g. {macs: 0.4}; the amount is "
        "searched (amount is then ignored).",
    )
    round_to: int | RoundTo = Field(
        8, description="structured: channels kept per group rounded to the nearest "
        "multiple of this (1: no rounding; groups smaller than it are not rounded); 'auto': "
        "onnxruntime's NCHWc block on this CPU (16 with AVX-512F, else 8).",
    )  # fmt: skip
    min_channels: int = Field(1, ge=1, description="structured: per-layer floor of channels kept.")
    skip: list[str] = Field(
        default_factory=list,
        description="structured: fnmatch patterns of layer names left whole, e.g. "
        "['features.0', '*.se.*'] (a pattern matching no layer is an error).",
    )
    head_amount: float | None = Field(
        None, ge=0.0, lt=1.0,
        description="structured, HF encoders: share of attention heads removed per layer "
        "(default: amount; 0 keeps every head).",
    )  # fmt: skip
    finetune_epochs: int = Field(0, ge=0, description="Epochs of fine-tuning after pruning.")
    recovery: Recovery = Field(
        Recovery.finetune,
        description="How the finetune_epochs recover accuracy: 'finetune' on the task loss, or "
        "'distill' from the unpruned model (KL at temperature 4 + 0.5 x task loss; embeddings: "
        "MSE + cosine), best val epoch kept.",
    )
    lr: float = Field(1e-3, gt=0.0, description="Fine-tuning learning rate (AdamW).")
    batch_size: int = Field(32, ge=1, description="Fine-tuning batch size.")

    @model_validator(mode="after")
    def _n_below_m(self):
        if self.n >= self.m:
            raise ValueError(f"n ({self.n}) must be smaller than m ({self.m})")
        if isinstance(self.round_to, int) and self.round_to < 1:
            raise ValueError(f"round_to must be >= 1 or 'auto', got {self.round_to}")
        if self.target is not None and self.method != PruneMethod.structured:
            raise ValueError("target needs method 'structured'")
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


def channel_targets(config: PruneConfig) -> ChannelTargets:
    return ChannelTargets(
        amount=config.amount, round_to=resolve_round_to(config.round_to),
        min_channels=config.min_channels, skip=tuple(config.skip), norm=config.norm.value,
        head_amount=config.head_amount,
        taylor=config.importance == ChannelImportance.taylor,
    )  # fmt: skip


def accumulate_gradients(module, bundle, ctx, config: PruneConfig) -> None:
    """Task-loss gradients summed over calibration batches of the train split (Taylor)."""
    import numpy as np

    if bundle.task.kind == TaskKind.embedding or ctx.data.train.labels is None:
        raise CompressorError("structured pruning: importance 'taylor' needs a labelled task")
    module.zero_grad(set_to_none=True)
    module.eval()  # BatchNorm statistics stay as trained
    batches = shuffled_batches(ctx.data.train, config.batch_size, np.random.default_rng(ctx.seed))
    for _, batch in zip(range(config.calibration_batches), batches, strict=False):
        out = first_output(module(*to_torch(bundle, bundle.feeds(batch))))
        task_loss(bundle, out, batch).backward()


def _prune_module(bundle, config: PruneConfig, ctx) -> tuple[object, dict]:
    module = bundle.clone_module()
    stats: dict = {"method": config.method.value, "amount": config.amount}
    if config.method == PruneMethod.structured:
        if config.importance == ChannelImportance.taylor:
            accumulate_gradients(module, bundle, ctx, config)
        inputs = to_torch(bundle, bundle.example_inputs)
        targets = channel_targets(config)
        stats["round_to"] = targets.round_to
        if config.target is not None:
            targets, searched = reach_target(bundle, module, inputs, targets, config.target)
            stats.update(searched, amount=targets.amount)
        stats.update(prune_structure(module, inputs, targets))
        module.zero_grad(set_to_none=True)
        stats.update(shares(bundle.module, module, inputs))
    elif config.method == PruneMethod.heads:
        stats["layers"] = prune_heads(module, config.amount)
    else:
        stats["scope"] = config.scope.value if config.method == PruneMethod.unstructured else None
        stats["skipped_layers"] = _apply_masks(module, config)
    return module, stats


def recover(module, bundle, ctx, config: PruneConfig) -> str:
    """Train the pruned ``module`` in place for ``config.finetune_epochs``; what was done."""
    if config.recovery == Recovery.distill:
        kd = DistillConfig(student="current", teacher="original", epochs=config.finetune_epochs,
                           lr=config.lr, batch_size=config.batch_size, weight_decay=0.0,
                           patience=config.finetune_epochs, seed=ctx.seed)  # fmt: skip
        train_student(module, bundle.module, bundle, ctx, kd)
        return "distill from the unpruned model"
    finetune(module, bundle, ctx, config.finetune_epochs, config.lr, config.batch_size,
             reference=bundle.module)  # fmt: skip
    return "finetune"


@register_compressor("prune", PruneConfig)
def prune(bundle, config: PruneConfig, ctx):
    """Prune weights (unstructured, N:M), channels (structured) or attention heads."""
    if bundle.module is None:
        raise CompressorError("prune needs a torch model (this bundle is ONNX-only)")
    before = ctx.evaluate_bundle(bundle)
    module, stats = _prune_module(bundle, config, ctx)
    pruned = bundle.replace(module=module.eval())
    stats["metric_after_prune"] = ctx.evaluate_bundle(pruned)["value"]
    if config.finetune_epochs:
        stats["recovery"] = recover(module, bundle, ctx, config)
    _make_permanent(module)
    after = ctx.evaluate_bundle(pruned)
    stats.update(metric_stats(ctx, before, after))
    stats.update(
        sparsity=round(sparsity(module), 6),
        size_bytes_before=size_bytes(bundle.module),
        size_bytes_after=size_bytes(module),
        params_before=bundle.param_count(),
        params_after=sum(p.numel() for p in module.parameters()),
        finetune_epochs=config.finetune_epochs,
    )
    return pruned, stats
