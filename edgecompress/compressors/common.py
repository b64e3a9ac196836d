"""Helpers shared by the compressors: sizes, sparsity, feeding data to torch modules."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from edgecompress.data import Split
from edgecompress.model import ModelBundle

if TYPE_CHECKING:
    import torch
    from torch import nn


@functools.cache
def prunable_types() -> tuple[type, ...]:
    """The layer types whose weights are pruned, quantized and measured: Conv1d/2d/3d, Linear."""
    from torch import nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def size_bytes(module: nn.Module) -> int:
    """Bytes of every parameter and buffer as stored (quantized buffers count natively)."""
    seen: set[int] = set()
    total = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if id(tensor) not in seen:
            seen.add(id(tensor))
            total += tensor.numel() * tensor.element_size()
    return total


def prunable_weights(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every Conv/Linear: the weights sparsity is measured over."""
    kinds = prunable_types()
    return [(n, m) for n, m in module.named_modules() if isinstance(m, kinds)]


def sparsity(module: nn.Module) -> float:
    """Share of zeros over the Conv/Linear weights."""
    zeros = total = 0
    for _, layer in prunable_weights(module):
        w = layer.weight.detach()
        zeros += int((w == 0).sum())
        total += w.numel()
    return zeros / total if total else 0.0


def to_torch(bundle: ModelBundle, feeds: dict[str, np.ndarray]) -> list[torch.Tensor]:
    """Positional torch inputs in the IO spec's order."""
    import torch

    return [torch.from_numpy(np.ascontiguousarray(feeds[s.name])) for s in bundle.io.inputs]


def first_output(out) -> torch.Tensor:
    if isinstance(out, tuple | list):
        return out[0]
    if isinstance(out, dict):
        return next(iter(out.values()))
    return out


def shuffled_batches(split: Split, batch_size: int, rng: np.random.Generator) -> Iterator[Split]:
    order = rng.permutation(len(split))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield subset(split, idx)


def subset(split: Split, idx: np.ndarray) -> Split:
    return Split(
        x=None if split.x is None else split.x[idx],
        texts=None if split.texts is None else [split.texts[i] for i in idx],
        labels=None if split.labels is None else split.labels[idx],
    )


def metric_stats(ctx, before: dict, after: dict) -> dict:
    """metric_before / metric_after (values) plus the metric's name."""
    return {
        "metric": after.get("metric"),
        "metric_before": before.get("value"),
        "metric_after": after.get("value"),
    }


def replace_submodule(root: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def run_batches(module: nn.Module, batches, handles: list) -> None:
    """Run ``batches`` through ``module`` without grad (for its hooks), then remove ``handles``."""
    import torch

    try:
        with torch.no_grad():
            for inputs in batches:
                module(*inputs)
    finally:
        for h in handles:
            h.remove()
