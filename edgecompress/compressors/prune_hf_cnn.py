"""Structured pruning of Hugging Face CNNs (ResNet, ConvNeXt) to widths their config describes,
so the pruned folder reloads with ``from_pretrained``.

The config's width fields (``WIDTHS``) are scaled by ``1 - amount`` (rounded like every channel
count), the model those widths describe is built on the meta device, and each channel group of
the dependency graph (Torch-Pruning, the same graph as prune_channels) is cut down to the size its
root layer has in that model, weakest channels first. Every parameter's shape must then equal the
target's (else the model type's widths are not what the config says, and nothing is claimed);
the config's width fields are updated last.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from edgecompress.compressors.prune_check import GroupPlan, cut, mismatch, outputs
from edgecompress.compressors.prune_hf import find_hf_model
from edgecompress.compressors.targets import ChannelTargets, kept_channels
from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch
    from torch import nn

# model_type -> config fields holding channel widths (ResNet bottlenecks: inner = out/reduction)
WIDTHS: dict[str, tuple[str, ...]] = {
    "resnet": ("embedding_size", "hidden_sizes"),
    "convnext": ("hidden_sizes",),
}


def prunes_cnn_widths(module: nn.Module, targets: ChannelTargets) -> bool:
    """Whether ``module`` holds a transformers CNN in the width table (and no layer is skipped:
    one config width per stage cannot leave a single layer whole)."""
    hf = find_hf_model(module)
    return hf is not None and getattr(hf.config, "model_type", "") in WIDTHS and not targets.skip


def scaled_config(config, targets: ChannelTargets):
    """The config with every width field scaled by ``1 - amount``."""

    def kept(n: int) -> int:
        return kept_channels(n, targets.amount, targets.round_to, targets.min_channels)

    new = copy.deepcopy(config)
    for name in WIDTHS[config.model_type]:
        value = getattr(config, name)
        setattr(new, name, [kept(v) for v in value] if isinstance(value, list) else kept(value))
    return new


def _out_channels(layer) -> int | None:
    return getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)


def _importance(targets: ChannelTargets):
    import torch_pruning as tp

    if targets.taylor:
        return tp.importance.GroupTaylorImportance(group_reduction="mean", normalizer=None)
    p = 1 if targets.norm == "l1" else 2
    return tp.importance.GroupMagnitudeImportance(p=p, group_reduction="mean", normalizer=None)


def _plan(dg, group, names: dict, name: str, before: int, after: int) -> GroupPlan:
    """The group as prune_check sees it: consumers whose inputs a cut zeroes; exact when only
    Conv/Linear/BatchNorm layers carry its channels (a LayerNorm over channels is not)."""
    import torch_pruning as tp

    plan, per_channel = GroupPlan(name, before, after), (tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR)
    for dep, idxs in group:
        m = dep.target.module
        if isinstance(m, per_channel) and not dg.is_out_channel_pruning_fn(dep.handler):
            plan.cuts.append((names[m], sorted(int(i) for i in idxs)))
        elif m in names and not isinstance(m, (*per_channel, tp.ops.TORCH_BATCHNORM)):
            plan.exact = False
    return plan


def _shrink_groups(module: nn.Module, dg, target: nn.Module, prefix: str, targets):
    """Cut each Conv/Linear-rooted group to its root's width in ``target``; the plans."""
    import torch
    import torch_pruning as tp

    names = {m: n for n, m in module.named_modules()}
    scorer, plans = _importance(targets), []
    roots = [tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR]
    for group in dg.get_all_groups(root_module_types=roots):
        root = group[0].dep.target.module
        name = names[root].removeprefix(prefix)
        n, want = dg.get_out_channels(root), _out_channels(target.get_submodule(name))
        if want is None or want >= n:
            continue
        weakest = torch.argsort(scorer(group))[: n - want]
        fn = dg.get_pruner_of_module(root).prune_out_channels
        pruned = dg.get_pruning_group(root, fn, sorted(int(i) for i in weakest))
        plans.append(_plan(dg, pruned, names, name, n, want))
        pruned.prune()
    return plans


def _check_shapes(hf: nn.Module, target: nn.Module) -> None:
    want = {k: tuple(v.shape) for k, v in target.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in hf.state_dict().items()}
    bad = [f"{k} {got.get(k)} (config: {want.get(k)})" for k in sorted(set(want) | set(got))
           if want.get(k) != got.get(k)]  # fmt: skip
    if bad:
        raise CompressorError(
            f"structured pruning: the pruned {type(hf).__name__} does not match the widths its "
            f"config describes: {'; '.join(bad[:3])}"
        )


def _verify(module: nn.Module, pristine: nn.Module, inputs, plans: list[GroupPlan]) -> None:
    """Same output shapes; and, when every group is exact (BatchNorm CNNs), the outputs of the
    original with the removed channels cut (prune_check)."""
    got, want = outputs(module, inputs), outputs(pristine, inputs)
    if all(p.exact for p in plans):
        want = outputs(cut(pristine, plans), inputs)
    elif [t.shape for t in got] == [t.shape for t in want]:
        return
    why = mismatch(got, want)
    if why:
        raise CompressorError(f"structured pruning of {type(module).__name__}: {why}")


def prune_cnn_widths(module: nn.Module, inputs: list[torch.Tensor], targets: ChannelTargets,
                     build_graph) -> dict:  # fmt: skip
    """Prune the transformers CNN in ``module`` to config-described widths, in place.
    ``build_graph(module, inputs)`` gives the dependency graph (prune_channels.build_graph)."""
    import torch

    hf = find_hf_model(module)
    prefix = next(n for n, m in module.named_modules() if m is hf)
    prefix = f"{prefix}." if prefix else ""
    new_config = scaled_config(hf.config, targets)
    with torch.device("meta"):
        target = type(hf)(new_config)
    pristine = copy.deepcopy(module)
    plans = _shrink_groups(module, build_graph(module, inputs)[0], target, prefix, targets)
    _check_shapes(hf, target)
    _verify(module, pristine, inputs, plans)
    fields = WIDTHS[hf.config.model_type]
    for name in fields:
        setattr(hf.config, name, getattr(new_config, name))
    now = ", ".join(f"{f}={getattr(hf.config, f)}" for f in fields)
    config = f"updated ({now}): save_pretrained/from_pretrained round-trip"
    return {"groups": [p.row() for p in plans], "hf_config": config}
