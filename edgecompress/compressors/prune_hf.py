"""Structured pruning of whole Hugging Face transformers (BERT-style encoders, DistilBERT, ViT,
GPT-2, Llama-style causal LMs with grouped-query attention): the hidden (residual) width,
attention heads and MLP channels, with a config that ``from_pretrained`` rebuilds.

Widths come from the config: hidden ``H -> kept(H)``, MLP ``I -> kept(I)``, heads ``n -> kept(n)``
(Llama: whole KV groups). Where the config ties ``head_dim = hidden / heads`` (BERT, ViT,
DistilBERT, GPT-2) and the kept heads cannot carry the kept hidden width at the old head size,
heads stay and their head dims shrink; the attention scale ``1/sqrt(head_dim)`` then changes,
so the query projection is multiplied by ``sqrt(d'/d)``: the pruned attention computes what the
original computes on the kept channels. Which channels stay is ranked by magnitude (or Taylor)
summed over every parameter a width touches (the width table: prune_hf_layouts). The model is
rebuilt from the new config, filled with the kept slices (every shape checked) and its parts
replace the old ones in place. The hidden width is left to the encoder path (prune_encoder)
when it is the model's output (a bare encoder's embeddings) or when layers are skipped.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgecompress.compressors.prune_check import outputs
from edgecompress.compressors.prune_hf_layouts import LAYOUTS, Layout, layout_of
from edgecompress.compressors.targets import ChannelTargets, kept_channels, slice_scores
from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass
class WidthPlan:
    """Widths (before, after) and the channels kept per axis ('h', ('q', layer) ...)."""

    hidden: tuple[int, int]
    heads: tuple[int, int]
    head_dim: tuple[int, int]
    intermediate: tuple[int, int]
    kv_heads: tuple[int, int] | None = None
    keep: dict = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """What the query projection is multiplied by (the attention scale's change)."""
        return math.sqrt(self.head_dim[1] / self.head_dim[0])


def find_hf_model(module: nn.Module):
    """The outermost transformers model inside ``module`` (or None)."""
    return next(
        (m for m in module.modules() if hasattr(m, "save_pretrained") and hasattr(m, "config")),
        None,
    )


def prunes_hidden(module: nn.Module, targets: ChannelTargets) -> bool:
    """Whether this path takes the model: a known layout, a head on top of the hidden width
    (a bare encoder's output is the hidden state), the same heads in every layer (no earlier
    ``prune_heads``) and no layer left whole."""
    hf = find_hf_model(module)
    return (
        hf is not None
        and getattr(hf.config, "model_type", "") in LAYOUTS
        and hf.base_model is not hf
        and not getattr(hf.config, "pruned_heads", None)
        and not targets.skip
    )


def _add(scores: dict, key, values: torch.Tensor) -> None:
    values = values / values.mean().clamp_min(1e-12)
    scores[key] = values if key not in scores else scores[key] + values


def axis_scores(hf: nn.Module, layout: Layout, targets: ChannelTargets) -> dict:
    """One score per channel of every axis, each parameter's share mean-normalised."""
    scores: dict = {}
    for name, p in hf.named_parameters():
        found = layout.axes(name)
        if found is None or (targets.taylor and p.grad is None):
            continue
        axes, layer = found
        for dim, axis in enumerate(axes):
            if axis is None:
                continue
            s = _slice_scores(p, dim, targets).float()
            if axis == "qkv":
                q, k, v = s.chunk(3)
                _add(scores, ("q", layer), q + k)
                _add(scores, ("v", layer), v)
            else:
                _add(scores, axis if axis == "h" else (axis, layer), s)
    return scores


def _slice_scores(p: torch.Tensor, dim: int, targets: ChannelTargets) -> torch.Tensor:
    if p.dim() > 1:
        return slice_scores(p, dim, targets.norm, targets.taylor)
    w = p.detach() * p.grad.detach() if targets.taylor else p.detach()
    return w.abs() if targets.taylor or targets.norm == "l1" else w.pow(2)


def _top(values: torch.Tensor, k: int) -> torch.Tensor:
    import torch

    return torch.sort(torch.topk(values, k).indices).values


def _norm(values: torch.Tensor) -> torch.Tensor:
    return values / values.mean().clamp_min(1e-12)


def _keep_heads(plan: WidthPlan, scores: dict, layer: int) -> None:
    """Kept heads of one layer (and, when head_dim shrinks, kept dims inside each head)."""
    import torch

    (n, n2), (d, d2) = plan.heads, plan.head_dim
    q, v = scores[("q", layer)], scores[("v", layer)]
    heads = _top(_norm(q.reshape(n, d).sum(1)) + _norm(v.reshape(n, d).sum(1)), n2)
    for axis, s in (("q", q), ("v", v)):
        per_head = [h * d + _top(s.reshape(n, d)[h], d2) for h in heads.tolist()]
        plan.keep[(axis, layer)] = torch.cat(per_head)


def _keep_groups(plan: WidthPlan, scores: dict, layer: int) -> None:
    """Grouped-query attention: whole KV groups (a KV head and the query heads reading it)."""
    import torch

    (n, _), (kv, kv2), d = plan.heads, plan.kv_heads, plan.head_dim[0]
    q, k = scores[("q", layer)], scores[("kv", layer)]
    groups = _top(_norm(k.reshape(kv, d).sum(1)) + _norm(q.reshape(kv, -1).sum(1)), kv2)
    per_group = n // kv * d
    plan.keep[("kv", layer)] = torch.cat([g * d + torch.arange(d) for g in groups.tolist()])
    plan.keep[("q", layer)] = torch.cat(
        [g * per_group + torch.arange(per_group) for g in groups.tolist()]
    )


def _heads_kept(n: int, d: int, hidden: int, amount: float) -> int:
    """Heads kept: ``kept(n)`` raised until they carry ``hidden`` at a head size <= d."""
    for m in range(kept_channels(n, amount), n + 1):
        if hidden % m == 0 and hidden // m <= d:
            return m
    raise CompressorError(
        f"structured pruning: a hidden width of {hidden} cannot be split over at most {n} heads "
        f"of at most {d} channels; choose another amount or round_to"
    )


def plan_widths(hf: nn.Module, layout: Layout, targets: ChannelTargets) -> WidthPlan:
    """Which channels of every width stay."""
    cfg = hf.config
    scores = axis_scores(hf, layout, targets)
    hidden, n = int(getattr(cfg, layout.hidden)), int(getattr(cfg, layout.heads))
    inter = len(scores[("i", 0)])
    h2 = kept_channels(hidden, targets.amount, targets.round_to, targets.min_channels)
    i2 = kept_channels(inter, targets.amount, targets.round_to, targets.min_channels)
    if layout.head_dim:  # head_dim is its own field: heads go by KV groups, dims stay
        d = int(getattr(cfg, layout.head_dim, None) or hidden // n)
        kv = int(getattr(cfg, layout.kv_heads, None) or n)
        kv2 = kept_channels(kv, targets.heads)
        plan = WidthPlan((hidden, h2), (n, kv2 * (n // kv)), (d, d), (inter, i2), (kv, kv2))
    else:
        d = hidden // n
        n2 = _heads_kept(n, d, h2, targets.heads)
        plan = WidthPlan((hidden, h2), (n, n2), (d, h2 // n2), (inter, i2))
    plan.keep["h"] = _top(scores["h"], h2)
    for layer in range(int(cfg.num_hidden_layers)):
        plan.keep[("i", layer)] = _top(scores[("i", layer)], i2)
        (_keep_groups if layout.head_dim else _keep_heads)(plan, scores, layer)
    return plan


def target_config(config, layout: Layout, plan: WidthPlan):
    new = copy.deepcopy(config)
    setattr(new, layout.hidden, plan.hidden[1])
    setattr(new, layout.heads, plan.heads[1])
    setattr(new, layout.intermediate, plan.intermediate[1])
    if layout.head_dim:
        setattr(new, layout.head_dim, plan.head_dim[0])
        setattr(new, layout.kv_heads, plan.kv_heads[1])
    return new


def _index(plan: WidthPlan, axis: str, layer: int | None) -> torch.Tensor:
    import torch

    if axis == "h":
        return plan.keep["h"]
    if axis == "qkv":  # GPT-2: [query | key | value], each hidden wide
        q, v, hidden = plan.keep[("q", layer)], plan.keep[("v", layer)], plan.hidden[0]
        return torch.cat([q, q + hidden, v + 2 * hidden])
    return plan.keep[(axis, layer)]


def sliced(name: str, tensor, layout: Layout, plan: WidthPlan, fold: bool = True):
    """``tensor`` cut to the kept channels (queries scaled when head_dim shrinks and ``fold``)."""
    found = layout.axes(name)
    if found is None:
        return tensor
    axes, layer = found
    for dim, axis in enumerate(axes):
        if axis is not None:
            tensor = tensor.index_select(dim, _index(plan, axis, layer))
    if fold and plan.scale != 1.0 and re.search(layout.query, name):
        tensor = tensor.clone()
        if layout.packed_qkv:  # only the query third of c_attn's output
            q = tensor.narrow(tensor.dim() - 1, 0, plan.hidden[1])
            q.mul_(plan.scale)
        else:
            tensor.mul_(plan.scale)
    return tensor


def rebuild(hf: nn.Module, layout: Layout, plan: WidthPlan, fold: bool = True) -> None:
    """Build the model the new config describes, fill it with the kept slices, and move its
    parts (and config) into ``hf`` in place. ``fold=False`` leaves the queries unscaled (the
    tests' reference, which keeps the original attention scale instead)."""
    import torch

    target = type(hf)(target_config(hf.config, layout, plan))
    want, have = target.state_dict(), hf.state_dict()
    state = {}
    with torch.no_grad():
        for name, ref in want.items():
            got = sliced(name, have[name], layout, plan, fold) if name in have else ref
            if tuple(got.shape) != tuple(ref.shape):
                raise CompressorError(
                    f"structured pruning: {name} is {tuple(got.shape)} after pruning but the "
                    f"pruned config describes {tuple(ref.shape)} (width table of "
                    f"{hf.config.model_type!r})"
                )
            state[name] = got.to(ref.dtype)
    target.load_state_dict(state)
    target.to(next(hf.parameters()).dtype).eval()
    for child, part in target.named_children():
        setattr(hf, child, part)
    hf.config = target.config


def prune_hf(module: nn.Module, inputs: list[torch.Tensor], targets: ChannelTargets) -> dict:
    """Shrink the hidden width, heads and MLP of the transformers model in ``module``."""
    hf = find_hf_model(module)
    layout = layout_of(hf.config)
    before = [tuple(t.shape) for t in outputs(module, inputs)]
    plan = plan_widths(hf, layout, targets)
    rebuild(hf, layout, plan)
    after = [tuple(t.shape) for t in outputs(module, inputs)]
    if after != before:
        raise CompressorError(f"structured pruning: output shapes change {before} -> {after}")
    return stats(hf, layout, plan)


def stats(hf: nn.Module, layout: Layout, plan: WidthPlan) -> dict:
    layers = [{"layer": i, "heads_before": plan.heads[0], "heads_after": plan.heads[1],
               "intermediate_before": plan.intermediate[0],
               "intermediate_after": plan.intermediate[1]}
              for i in range(int(hf.config.num_hidden_layers))]  # fmt: skip
    out = {"architecture": type(hf).__name__, "hidden": list(plan.hidden),
           "heads": list(plan.heads), "head_dim": list(plan.head_dim),
           "intermediate": list(plan.intermediate), "layers": layers}  # fmt: skip
    if plan.kv_heads:
        out["kv_heads"] = list(plan.kv_heads)
    if plan.scale != 1.0:
        out["query_scale_folded"] = round(plan.scale, 6)
    fields = [layout.hidden, layout.heads, layout.intermediate] + (
        [layout.kv_heads] if plan.kv_heads else []
    )
    now = ", ".join(f"{f}={getattr(hf.config, f)}" for f in fields)
    out["hf_config"] = f"updated ({now}): save_pretrained/from_pretrained round-trip"
    return out
