"""Structured channel pruning that physically removes channels from Conv/Linear chains.

The model is traced with torch.fx; from each Conv/Linear ("producer") the output channels are
followed through channel-wise ops (activations, pooling, dropout, BatchNorm, flatten) to the
layers that consume them. Producers whose channels reach the model's output (the classifier)
are never pruned. Anything else on the way (residual adds, concatenation, grouped convolutions,
reshapes that mix channels) is refused with a CompressorError naming the layer and the op.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING

from edgecompress.compressors.common import replace_submodule
from edgecompress.compressors.tracing import module_of, trace
from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch
    import torch.fx as fx
    from torch import nn

PASS_METHODS = {"relu", "sigmoid", "tanh", "contiguous", "clone"}
FLATTEN_METHODS = {"flatten", "view", "reshape"}


@functools.cache
def _kinds() -> SimpleNamespace:
    """The layer types and functions channels pass through (built on first use: torch)."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    return SimpleNamespace(
        pass_modules=(
            nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.LeakyReLU, nn.ELU,
            nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Identity, nn.Dropout, nn.Dropout1d,
            nn.Dropout2d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
            nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d,
        ),
        pass_functions={
            F.relu, torch.relu, F.relu6, F.gelu, F.silu, torch.sigmoid, torch.tanh,
            F.leaky_relu, F.dropout, F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
            F.hardswish,
        },
        flatten_functions={torch.flatten},
        batchnorms=(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d),
        convs=(nn.Conv1d, nn.Conv2d, nn.Conv3d),
    )  # fmt: skip


@dataclass
class Plan:
    producer: str
    out_channels: int
    batchnorms: list[str] = field(default_factory=list)
    consumers: list[tuple[str, int]] = field(default_factory=list)  # (layer, flatten factor)
    keep: torch.Tensor | None = None


def _describe(gm: fx.GraphModule, node: fx.Node) -> str:
    mod = module_of(gm, node)
    if mod is not None:
        return f"layer '{node.target}' ({type(mod).__name__})"
    target = getattr(node.target, "__name__", str(node.target))
    return f"op '{target}' (node {node.name})"


class _Refuse(Exception):
    pass


def _shape(node: fx.Node):
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _flatten_factor(src: fx.Node, dst: fx.Node) -> int:
    """Spatial size folded into each channel by a flatten to [N, C*S], else refuse."""
    before, after = _shape(src), _shape(dst)
    if before is None or after is None or len(after) != 2 or len(before) < 2:
        raise _Refuse("a reshape that is not a flatten to [batch, features]")
    spatial = 1
    for d in before[2:]:
        spatial *= d
    if after[1] != before[1] * spatial:
        raise _Refuse("a reshape that mixes the channel dimension")
    return spatial


def _step(gm, plan: Plan, node: fx.Node, user: fx.Node, layout: str, factor: int):
    """What the channels become at ``user``: (layout, factor) to continue, or None to stop."""
    from torch import nn

    kinds = _kinds()
    if any(a is not node for a in user.all_input_nodes):
        raise _Refuse("it combines this tensor with another one")
    mod = module_of(gm, user)
    if mod is not None:
        if isinstance(mod, kinds.pass_modules):
            return layout, factor
        if isinstance(mod, kinds.batchnorms) and factor == 1 and layout == "first":
            plan.batchnorms.append(user.target)
            return layout, factor
        if isinstance(mod, nn.BatchNorm1d) and factor == 1:
            plan.batchnorms.append(user.target)
            return layout, factor
        if isinstance(mod, nn.Flatten):
            return "last", factor * _flatten_factor(node, user)
        if isinstance(mod, kinds.convs) and layout == "first" and factor == 1:
            if mod.groups != 1:
                raise _Refuse(f"grouped convolution (groups={mod.groups})")
            plan.consumers.append((user.target, 1))
            return None
        if isinstance(mod, nn.Linear) and layout == "last":
            plan.consumers.append((user.target, factor))
            return None
        raise _Refuse("an unsupported layer (or layout) for channel pruning")
    if user.op == "call_function" and user.target in kinds.pass_functions:
        return layout, factor
    if user.op == "call_method" and user.target in PASS_METHODS:
        return layout, factor
    flat_fn = user.op == "call_function" and user.target in kinds.flatten_functions
    if flat_fn or (user.op == "call_method" and user.target in FLATTEN_METHODS):
        return "last", factor * _flatten_factor(node, user)
    if user.op == "call_function" and user.target is operator.getitem:
        raise _Refuse("indexing/slicing")
    raise _Refuse("an operation structured pruning does not understand")


def _follow(gm: fx.GraphModule, start: fx.Node, layout: str) -> Plan | None:
    """The BatchNorms and consumers of ``start``'s channels; None when they reach the output."""
    mod = module_of(gm, start)
    plan = Plan(start.target, mod.weight.shape[0])
    stack = [(start, layout, 1)]
    while stack:
        node, lay, factor = stack.pop()
        for user in node.users:
            if user.op == "output":
                return None
            try:
                nxt = _step(gm, plan, node, user, lay, factor)
            except _Refuse as why:
                raise CompressorError(
                    f"structured pruning: cannot follow the channels of layer '{start.target}' "
                    f"through {_describe(gm, user)}: {why}; prune this model with method "
                    "'unstructured' or 'n:m' instead"
                ) from None
            if nxt is not None:
                stack.append((user, *nxt))
    return plan


def find_plans(module: nn.Module, example_inputs: list[torch.Tensor]) -> list[Plan]:
    from torch import nn
    from torch.fx.passes.shape_prop import ShapeProp

    convs = _kinds().convs
    gm = trace(module, "structured pruning")
    ShapeProp(gm).propagate(*example_inputs)
    calls: dict[str, int] = {}
    plans = []
    for node in gm.graph.nodes:
        mod = module_of(gm, node)
        if not isinstance(mod, convs + (nn.Linear,)):
            continue
        calls[node.target] = calls.get(node.target, 0) + 1
        if calls[node.target] > 1:
            raise CompressorError(f"structured pruning: layer '{node.target}' is called twice")
        if isinstance(mod, convs) and mod.groups != 1:
            raise CompressorError(
                f"structured pruning: layer '{node.target}' is a grouped convolution "
                f"(groups={mod.groups}); its channels cannot be removed independently"
            )
        plan = _follow(gm, node, "first" if isinstance(mod, convs) else "last")
        if plan is not None:
            plans.append(plan)
    return plans


def choose_channels(layer: nn.Module, amount: float, norm: str) -> torch.Tensor:
    """Indices of the output channels to keep: the largest filters by L1 or L2 norm."""
    import torch

    w = layer.weight.detach().reshape(layer.weight.shape[0], -1)
    scores = w.abs().sum(1) if norm == "l1" else w.pow(2).sum(1).sqrt()
    n = w.shape[0]
    keep = max(1, n - int(amount * n + 1e-9))
    return torch.sort(torch.topk(scores, keep).indices).values


def _shrink_layer(layer: nn.Module, out_keep, in_keep) -> nn.Module:
    from torch import nn

    w = layer.weight.detach()
    bias = None if layer.bias is None else layer.bias.detach()
    if out_keep is not None:
        w = w[out_keep]
        bias = None if bias is None else bias[out_keep]
    if in_keep is not None:
        w = w[:, in_keep]
    if isinstance(layer, nn.Linear):
        new = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    else:
        new = type(layer)(
            w.shape[1], w.shape[0], layer.kernel_size, stride=layer.stride,
            padding=layer.padding, dilation=layer.dilation, groups=1,
            bias=bias is not None, padding_mode=layer.padding_mode,
        )  # fmt: skip
    new.weight = nn.Parameter(w.clone())
    if bias is not None:
        new.bias = nn.Parameter(bias.clone())
    return new.to(w.device).train(layer.training)


def _shrink_bn(bn: nn.Module, keep: torch.Tensor) -> nn.Module:
    import torch

    new = type(bn)(len(keep), bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    with torch.no_grad():
        if bn.affine:
            new.weight.copy_(bn.weight[keep])
            new.bias.copy_(bn.bias[keep])
        if bn.track_running_stats:
            new.running_mean.copy_(bn.running_mean[keep])
            new.running_var.copy_(bn.running_var[keep])
            new.num_batches_tracked.copy_(bn.num_batches_tracked)
    return new.to(bn.weight.device if bn.affine else "cpu").train(bn.training)


def apply_plans(module: nn.Module, plans: list[Plan], amount: float, norm: str) -> list[dict]:
    """Remove channels in place (module is already a copy); one stats row per pruned layer."""
    import torch

    out_keep: dict[str, torch.Tensor] = {}
    in_keep: dict[str, torch.Tensor] = {}
    rows = []
    for plan in plans:
        keep = choose_channels(module.get_submodule(plan.producer), amount, norm)
        out_keep[plan.producer] = keep
        for bn in plan.batchnorms:
            replace_submodule(module, bn, _shrink_bn(module.get_submodule(bn), keep))
        for name, factor in plan.consumers:
            idx = (keep[:, None] * factor + torch.arange(factor)[None, :]).reshape(-1)
            in_keep[name] = idx
        rows.append(
            {
                "layer": plan.producer,
                "channels_before": plan.out_channels,
                "channels_after": len(keep),
            }
        )
    for name in set(out_keep) | set(in_keep):
        layer = module.get_submodule(name)
        replace_submodule(module, name, _shrink_layer(layer, out_keep.get(name), in_keep.get(name)))
    return rows
