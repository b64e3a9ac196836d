"""Structured channel pruning through the whole graph, with Torch-Pruning's DependencyGraph.

Torch-Pruning traces the model once (through autograd) and couples every dimension that must
shrink together into one channel group: a Conv's output channels with its BatchNorm, the next
layers' inputs, the other operand of a residual add, a slice of a concatenation, a depthwise
convolution, a squeeze-excite gate, LayerNorm, a flatten into a Linear. Each group is ranked
(L1/L2 magnitude summed over its layers, or first-order Taylor) and its weakest channels are
removed from every layer at once: the model shrinks physically. Groups whose channels are the
model's outputs (the classifier's logits) or are tied to its inputs stay whole. The result is
checked against the original with the removed channels cut (prune_check); a group that cannot
be followed is named with the operations its channels pass through.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from typing import TYPE_CHECKING

from edgecompress.compressors.heads import find_encoder
from edgecompress.compressors.prune_check import GroupPlan, cannot_follow, find_culprit, verify
from edgecompress.compressors.prune_encoder import prune_encoder
from edgecompress.compressors.prune_hf import prune_hf, prunes_hidden
from edgecompress.compressors.prune_hf_cnn import prune_cnn_widths, prunes_cnn_widths
from edgecompress.compressors.targets import ChannelTargets, check_skip_patterns, kept_channels
from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch
    from torch import nn


def build_graph(module: nn.Module, inputs: list[torch.Tensor]):
    """(DependencyGraph, the nodes standing for the model's float inputs)."""
    import torch
    import torch_pruning as tp

    markers = []

    def forward(model, args):  # float inputs enter through a marked op, so groups can see them
        marked = []
        for t in args:
            if t.is_floating_point():
                t = t.detach().clone().requires_grad_(True) * 1.0
                markers.append(t.grad_fn)
            marked.append(t)
        return model(*marked)

    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown ops become element-wise: prune_check checks
        dg = tp.DependencyGraph().build_dependency(
            module, example_inputs=inputs, forward_fn=forward, output_transform=_tensors,
            verbose=False,
        )  # fmt: skip
    entry = {n for n in dg.module2node.values() if any(n.grad_fn is m for m in markers)}
    return dg, entry


def _tensors(out):
    return [v for v in out.values() if hasattr(v, "grad_fn")] if isinstance(out, dict) else out


def _left_whole(dg, group, entry) -> str | None:
    for dep, _ in group:
        if not dep.target.outputs and dg.is_out_channel_pruning_fn(dep.handler):
            return "its channels are a model output"
        if dep.target in entry:
            return "its channels are tied to a model input"
    return None


def _channel_groups(dg, group) -> int:
    """Grouped convolutions (not depthwise) and GroupNorm prune the same channels per group:
    the group count every member can split by (the least common multiple of theirs)."""
    import torch_pruning as tp

    found = [1]
    for dep, _ in group:
        m = dep.target.module
        if isinstance(m, tp.ops.TORCH_CONV) and m.groups == m.out_channels:
            continue
        pruner = dg.get_pruner_of_module(m)
        if pruner is not None:
            out = dg.is_out_channel_pruning_fn(dep.handler)
            found.append(
                pruner.get_out_channel_groups(m) if out else pruner.get_in_channel_groups(m)
            )
    return math.lcm(*found)


def _op_name(node) -> str:
    raw = node.grad_fn.name() if hasattr(node.grad_fn, "name") else str(node.module)
    return re.sub(r"Backward\d*$", "", raw).lower()


def _describe(dg, group, plan: GroupPlan) -> GroupPlan:
    """Fill the plan's layers, ops, consumer cuts and exactness from its pruning group."""
    import torch_pruning as tp

    kinds = tp.ops.OPTYPE
    ops = {kinds.ELEMENTWISE, kinds.CONCAT, kinds.SPLIT, kinds.RESHAPE, kinds.SLICE,
           kinds.EXPAND, kinds.UNBIND}  # fmt: skip
    for dep, idxs in group:
        node, m = dep.target, dep.target.module
        shrinks = dg.is_out_channel_pruning_fn(dep.handler)
        if isinstance(m, tp.ops.TORCH_CONV | tp.ops.TORCH_LINEAR) and not shrinks:
            plan.cuts.append((dg._module2name[m], sorted(int(i) for i in idxs)))
        elif isinstance(m, tp.ops.TORCH_CONV | tp.ops.TORCH_LINEAR | tp.ops.TORCH_BATCHNORM):
            _add(plan.layers, dg._module2name[m])
        elif node.type in ops:
            if node.inputs:  # (none: a weight's transpose, a marked model input)
                _add(plan.ops, _op_name(node))
        elif m in dg._module2name:  # LayerNorm, GroupNorm, PReLU, embeddings ...
            plan.exact = False  # a cut does not reproduce pruning across such a layer
            _add(plan.layers, dg._module2name[m])
    return plan


def _add(names: list[str], name: str) -> None:
    if name not in names:
        names.append(name)


def _importance(targets: ChannelTargets):
    import torch_pruning as tp

    if targets.taylor:
        return tp.importance.GroupTaylorImportance(group_reduction="mean", normalizer=None)
    p = 1 if targets.norm == "l1" else 2
    return tp.importance.GroupMagnitudeImportance(p=p, group_reduction="mean", normalizer=None)


def _plan_group(dg, group, targets: ChannelTargets, scorer) -> GroupPlan | None:
    import torch

    root = group[0].dep.target.module
    n = dg.get_out_channels(root)
    imp = scorer(group)
    if imp is None or len(imp) != n:
        return None
    g = _channel_groups(dg, group)
    size = n // g
    unit = max(1, targets.round_to // math.gcd(targets.round_to, g))
    keep = kept_channels(size, targets.amount, unit, -(-targets.min_channels // g))
    weakest = torch.argsort(imp.reshape(g, size).mean(0))[: size - keep]
    remove = sorted(int(i) + k * size for k in range(g) for i in weakest)
    plan = GroupPlan(dg._module2name[root], n, n - len(remove), remove)
    if remove:
        fn = dg.get_pruner_of_module(root).prune_out_channels
        _describe(dg, dg.get_pruning_group(root, fn, remove), plan)
    return plan


def plan_groups(dg, entry, module: nn.Module, targets: ChannelTargets):
    """(plans to apply, rows for the groups left whole) over every Conv/Linear-rooted group."""
    import torch_pruning as tp

    skipped = [m for name, m in module.named_modules() if name and targets.skipped(name)]
    roots = [tp.ops.TORCH_CONV, tp.ops.TORCH_LINEAR]
    scorer, plans, whole, candidates = _importance(targets), [], [], 0
    for group in dg.get_all_groups(ignored_layers=skipped, root_module_types=roots):
        root = group[0].dep.target.module
        why = _left_whole(dg, group, entry)
        if why:
            whole.append({"layer": dg._module2name[root], "kept_whole": why})
            continue
        candidates += 1
        try:
            plan = _plan_group(dg, group, targets, scorer)
        except Exception as exc:  # Torch-Pruning mapped indices it cannot follow
            bad = _describe(dg, group, GroupPlan(dg._module2name[root], len(group[0].idxs), 0))
            raise cannot_follow(bad, f"{type(exc).__name__}: {exc}") from None
        if plan is not None and plan.remove:
            plans.append(plan)
    if not candidates:
        kept = ", ".join(f"{w['layer']} ({w['kept_whole']})" for w in whole) or "none"
        raise CompressorError(
            f"structured pruning: no channel group can be pruned (Conv/Linear groups: {kept}; "
            f"skipped by pattern: {len(skipped)} layers)"
        )
    return plans, whole


def apply_plans(module: nn.Module, plans: list[GroupPlan], dg) -> list[GroupPlan]:
    """Prune ``plans`` from ``module`` (whose graph is ``dg``) in place; those applied."""
    done = []
    for plan in plans:
        layer = module.get_submodule(plan.layer)
        fn = dg.get_pruner_of_module(layer).prune_out_channels
        group = dg.get_pruning_group(layer, fn, plan.remove)
        if dg.check_pruning_group(group):  # (it refuses to empty a layer)
            group.prune()
            done.append(plan)
    return done


def prune_unchecked(module: nn.Module, inputs: list[torch.Tensor], targets: ChannelTargets):
    """Remove channel groups in place without the check against the original (for searches
    over many candidate amounts; the pruning finally kept is checked by prune_channels)."""
    dg, entry = build_graph(module, inputs)
    apply_plans(module, plan_groups(dg, entry, module, targets)[0], dg)


def prune_channels(module: nn.Module, inputs: list[torch.Tensor], targets: ChannelTargets) -> dict:
    """Remove channel groups from ``module`` in place; stats: one row per group."""
    check_skip_patterns(module, targets)
    module.eval()
    pristine = copy.deepcopy(module)
    dg, entry = build_graph(module, inputs)
    plans, whole = plan_groups(dg, entry, module, targets)
    plans = apply_plans(module, plans, dg)

    def prune_copy(model, subset):
        apply_plans(model, subset, build_graph(model, inputs)[0])

    why = verify(module, pristine, inputs, plans, prune_copy)
    if why:
        find_culprit(pristine, inputs, plans, prune_copy)
        raise CompressorError(f"structured pruning: {why} (no single channel group explains it)")
    return {"groups": [p.row() for p in plans], "groups_kept_whole": whole}


def prune_structure(module: nn.Module, inputs: list[torch.Tensor], targets: ChannelTargets) -> dict:
    """Structured pruning in place: hidden width, heads and MLP channels of a Hugging Face
    transformer with a head (prune_hf); heads and MLP channels of a Hugging Face encoder
    (BERT-style, ViT) whose output is its hidden state or with layers skipped; HF ResNet and
    ConvNeXt to the widths of their scaled config (prune_hf_cnn); else channel groups through
    the whole graph."""
    if prunes_hidden(module, targets):
        return prune_hf(module, inputs, targets)
    if find_encoder(module) is not None:
        check_skip_patterns(module, targets)
        return prune_encoder(module, targets)
    if prunes_cnn_widths(module, targets):  # HF ResNet/ConvNeXt: widths the config describes
        return prune_cnn_widths(module, inputs, targets, build_graph)
    stats = prune_channels(module, inputs, targets)
    hf = next((m for m in module.modules() if hasattr(m, "save_pretrained")), None)
    if hf is not None and hasattr(hf, "config"):
        stats["hf_config"] = (
            f"not updated: {type(hf.config).__name__} cannot describe per-layer channel counts, "
            "so from_pretrained cannot rebuild this model; save the module (state_dict, .pt2, "
            "ONNX)"
        )
    return stats
