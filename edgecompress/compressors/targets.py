"""What structured pruning aims for: the share of channels to remove, rounding, a per-layer
floor, layers left whole, and how channels are ranked. Shared by the graph path
(prune_channels), the transformer path (prune_encoder) and distillation's derived students."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class ChannelTargets:
    amount: float = 0.5  # share of each group's channels removed
    round_to: int = 8  # channels kept: nearest multiple of this (1: no rounding)
    min_channels: int = 1  # per-layer floor
    skip: tuple[str, ...] = ()  # fnmatch patterns of layer names left whole
    norm: str = "l1"  # magnitude ranking: l1 | l2
    taylor: bool = False  # rank by |weight x gradient| (gradients accumulated beforehand)
    head_amount: float | None = None  # transformers: share of attention heads (None: amount)

    @property
    def heads(self) -> float:
        return self.amount if self.head_amount is None else self.head_amount

    def skipped(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.skip)


def kept_channels(n: int, amount: float, round_to: int = 1, floor: int = 1) -> int:
    """How many of ``n`` channels stay: ``n * (1 - amount)`` rounded to the nearest multiple of
    ``round_to`` (ties up; at least one multiple; no rounding when ``n < round_to``), never
    below ``floor`` nor above ``n``."""
    if amount <= 0 or n <= 1:
        return n
    if round_to > 1 and n >= round_to:
        keep = max(round_to, math.floor(n * (1 - amount) / round_to + 0.5) * round_to)
    else:
        keep = max(1, n - int(amount * n + 1e-9))
    return min(n, max(keep, floor))


def check_skip_patterns(module: nn.Module, targets: ChannelTargets) -> None:
    """A pattern naming no layer is a typo: refuse it rather than prune what it meant to keep."""
    names = [name for name, _ in module.named_modules() if name]
    for pattern in targets.skip:
        if not any(fnmatchcase(name, pattern) for name in names):
            raise CompressorError(
                f"structured pruning: skip pattern {pattern!r} matches no layer "
                f"(layers look like {', '.join(names[:4])} ...)"
            )


def slice_scores(weight: torch.Tensor, dim: int, norm: str, taylor: bool) -> torch.Tensor:
    """One score per index of ``weight`` along ``dim``: L1 / squared L2 of the slice, or the
    first-order Taylor term sum |w x dL/dw| when ``taylor`` (the gradient must be there)."""
    w = weight.detach().movedim(dim, 0).flatten(1)
    if taylor:
        if weight.grad is None:
            raise CompressorError("structured pruning: taylor importance found no gradient")
        return (w * weight.grad.detach().movedim(dim, 0).flatten(1)).abs().sum(1)
    return w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1)
