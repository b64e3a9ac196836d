"""Structured pruning aimed at a target instead of a channel share: keep a share of the
parameters, of the MACs, or of the onnxruntime latency.

The channel share (``amount``) is searched by bisection: each candidate amount prunes a copy of
the model through the same channel groups (with the same floor, rounding and skipped layers)
and is measured — parameters and MACs with Torch-Pruning's counter on the example inputs, latency
as the p50 of an exported copy on one onnxruntime thread, timed interleaved with the unpruned
model so both see the same machine load. The smallest amount whose measured share meets the
target wins. Rounding makes the share a step function of the amount, so the share reached is at
or below the target (by up to one rounding step).

``round_to: auto`` resolves to onnxruntime's NCHWc block on this host (16 channels with
AVX-512F, else 8): channel counts that are not multiples of it are padded up to it by the
layout transform of onnxruntime's default optimization level, and tensors concatenated on the
channel axis fall out of the blocked layout (reorders, NCHW pooling).
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, model_validator

from edgecompress.compressors.heads import find_encoder
from edgecompress.compressors.prune_channels import (
    build_graph,
    plan_groups,
    prune_structure,
    prune_unchecked,
)
from edgecompress.compressors.targets import ChannelTargets
from edgecompress.errors import CompressorError
from edgecompress.exporters.onnx.export import export_module
from edgecompress.measure.latency import summarize_ms, time_calls
from edgecompress.measure.machine import cpu_model_and_flags
from edgecompress.registry import StepConfig
from edgecompress.runtimes import OnnxRunner

if TYPE_CHECKING:
    import torch
    from torch import nn

MAX_AMOUNT = 0.95  # the search never removes more than this share of a group
STEPS = 10  # bisection steps over the amount (resolution 0.95 / 2**10 ~ 0.001)
LATENCY_STEPS = 5  # fewer for latency: each step exports and times a copy
LATENCY_RUNS = 300  # timed calls per model and candidate (batch 1, in blocks of 10)


class TargetMetric(StrEnum):
    params = "params"
    macs = "macs"
    latency = "latency"


class RoundTo(StrEnum):
    auto = "auto"  # onnxruntime's NCHWc block on this host


class PruneTarget(StepConfig):
    """Keep this share of one measure of the model; the channel share is searched."""

    params: float | None = Field(None, gt=0.0, lt=1.0, description="Share of parameters kept.")
    macs: float | None = Field(
        None, gt=0.0, lt=1.0, description="Share of multiply-accumulates kept (example inputs)."
    )
    latency: float | None = Field(
        None, gt=0.0, lt=1.0,
        description="Share of onnxruntime p50 latency kept (batch 1, one thread, exported copy).",
    )  # fmt: skip

    @model_validator(mode="after")
    def _exactly_one(self):
        given = [m.value for m in TargetMetric if getattr(self, m.value) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of params, macs or latency (got {given or 'none'})")
        return self

    @property
    def metric(self) -> TargetMetric:
        return next(m for m in TargetMetric if getattr(self, m.value) is not None)

    @property
    def share(self) -> float:
        return getattr(self, self.metric.value)


def nchwc_block() -> int:
    """onnxruntime's NCHWc channel block on this CPU: 16 with AVX-512F, else 8."""
    return 16 if "avx512f" in cpu_model_and_flags()[1] else 8


def resolve_round_to(value: int | RoundTo) -> int:
    return nchwc_block() if value == RoundTo.auto else int(value)


def count_macs_params(module: nn.Module, inputs: list[torch.Tensor]) -> tuple[int, int]:
    import torch_pruning as tp

    macs, params = tp.utils.count_ops_and_params(module.eval(), tuple(inputs))
    return int(macs), int(params)


def counter(metric: TargetMetric, inputs: list[torch.Tensor]) -> Callable[[nn.Module], float]:
    """module -> its parameter or MAC count."""
    pick = 0 if metric == TargetMetric.macs else 1
    return lambda module: float(count_macs_params(module, inputs)[pick])


class LatencyProbe:
    """p50 of an exported candidate over the unpruned model's, timed interleaved (batch 1)."""

    def __init__(self, bundle, folder: Path, runs: int = LATENCY_RUNS):
        self.bundle, self.folder, self.runs = bundle, folder, runs
        self.feeds = [{k: v[:1] for k, v in bundle.example_inputs.items()}]
        self.reference = self._runner(bundle.module, "reference")
        self.count = 0

    def _runner(self, module, name: str):
        path = self.folder / f"{name}.onnx"
        export_module(self.bundle, module, path, opset=17, exporter="torchscript")
        return OnnxRunner(path, threads=1, io=self.bundle.io).run

    def __call__(self, module: nn.Module) -> float:
        self.count += 1
        runs = {"ref": self.reference, "new": self._runner(module, f"candidate{self.count}")}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for run in runs.values():
            time_calls(run, self.feeds, 0, warmup=10, label=None)
        for _ in range(self.runs // 10):
            for name, run in runs.items():
                times[name] += time_calls(run, self.feeds, 10, warmup=0, label=None)
        p50 = {k: summarize_ms(v)["p50"] for k, v in times.items()}
        return p50["new"] / p50["ref"]


def _plain(module: nn.Module) -> bool:
    """Pruned by channel groups alone (no Hugging Face model, whose own paths update configs)."""
    hf = any(hasattr(m, "save_pretrained") for m in module.modules())
    return not hf and find_encoder(module) is None


class Candidates:
    """Pruned copies of ``module`` at any amount, measured by ``share``; amounts that remove
    the same channels (rounding makes many do) are measured once."""

    def __init__(self, module, inputs, targets: ChannelTargets, share):
        self.module, self.inputs, self.targets, self.share = module, inputs, targets, share
        self.graph = build_graph(module, inputs) if _plain(module) else None
        self.seen: dict = {}
        self.trials: list[dict] = []

    def _key(self, targets: ChannelTargets):
        if self.graph is None:
            return targets.amount
        plans, _ = plan_groups(*self.graph, self.module, targets)
        return tuple((p.layer, tuple(p.remove)) for p in plans)

    def __call__(self, amount: float) -> float:
        targets = dataclasses.replace(self.targets, amount=amount)
        key = self._key(targets)
        if key not in self.seen:
            candidate = copy.deepcopy(self.module)
            if self.graph is None:
                prune_structure(candidate, self.inputs, targets)
            else:
                prune_unchecked(candidate, self.inputs, targets)
            self.seen[key] = self.share(candidate)
        self.trials.append({"amount": round(amount, 4), "share": round(self.seen[key], 4)})
        return self.seen[key]


def search_amount(measure: Candidates, goal: float, steps: int = STEPS) -> tuple[float, float]:
    """(smallest amount whose pruned copy has ``measure(amount) <= goal``, that share)."""
    lo, hi = 0.0, MAX_AMOUNT
    reached = measure(hi)
    if reached > goal:
        raise CompressorError(
            f"structured pruning: target {goal} cannot be reached: removing {MAX_AMOUNT:.0%} of "
            f"every prunable channel group keeps {reached:.3f} (layers left whole, the floor "
            "min_channels, round_to or the groups kept whole set that limit; for latency, "
            "channel counts below onnxruntime's NCHWc block are padded up to it: round_to: auto)"
        )
    for _ in range(steps):
        mid = (lo + hi) / 2
        value = measure(mid)
        if value <= goal:
            hi, reached = mid, value
        else:
            lo = mid
    return hi, reached


def reach_target(bundle, module, inputs, targets: ChannelTargets, target: PruneTarget):
    """(ChannelTargets with the searched amount, stats of the search)."""
    metric, goal = target.metric, target.share
    with tempfile.TemporaryDirectory() as tmp:
        if metric == TargetMetric.latency:
            share, steps = LatencyProbe(bundle, Path(tmp)), LATENCY_STEPS
        else:
            count, steps = counter(metric, inputs), STEPS
            full = count(module)
            share = lambda m: count(m) / full  # noqa: E731
        candidates = Candidates(module, inputs, targets, share)
        amount, reached = search_amount(candidates, goal, steps)
    stats = {"target": {metric.value: goal}, "amount_chosen": round(amount, 4),
             f"{metric.value}_share": round(reached, 4), "search": candidates.trials}  # fmt: skip
    return dataclasses.replace(targets, amount=amount), stats


def shares(before: nn.Module, after: nn.Module, inputs) -> dict:
    """Parameters and MACs of ``after`` as shares of ``before``'s (example inputs)."""
    try:
        macs0, params0 = count_macs_params(before, inputs)
        macs1, params1 = count_macs_params(after, inputs)
    except Exception as exc:  # Torch-Pruning's counter runs the model: any error it raises
        return {"shares": f"not counted: {type(exc).__name__}: {exc}"}
    return {"params_share": round(params1 / params0, 4),
            "macs_share": round(macs1 / macs0, 4) if macs0 else None}  # fmt: skip
