"""Fusion for inference: fold BatchNorm into the preceding Conv/Linear, merge Linear->Linear
(with only Dropout between: exact in eval), and drop Dropout/Identity.

torch.fx first (any wiring); when the model cannot be traced, a module-pattern fallback fuses
inside ``nn.Sequential`` containers (where order is the data flow). If BatchNorms remain that
the fallback cannot fold, the error names the layer fx failed on.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from pydantic import Field

from edgecompress.compressors.common import metric_stats, size_bytes, to_torch
from edgecompress.compressors.tracing import module_of, trace
from edgecompress.errors import CompressorError
from edgecompress.registry import StepConfig, register_compressor

if TYPE_CHECKING:
    import torch.fx as fx
    from torch import nn


@functools.cache
def convs() -> tuple[type, ...]:
    from torch import nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d)


@functools.cache
def batchnorms() -> tuple[type, ...]:
    from torch import nn

    return (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@functools.cache
def drops() -> tuple[type, ...]:
    """Layers that are no-ops in eval: Dropout variants and Identity."""
    from torch import nn

    return (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.Identity)


class FuseConfig(StepConfig):
    """Fold BatchNorm, merge consecutive Linear layers, drop Dropout/Identity (inference)."""

    fold_batchnorm: bool = Field(True, description="Fold BatchNorm into the preceding layer.")
    merge_linears: bool = Field(True, description="Merge Linear->Linear with nothing between.")
    remove_dropout: bool = Field(True, description="Drop Dropout/Identity (no-ops in eval).")
    tolerance: float = Field(
        1e-4, gt=0.0, description="Max abs difference to the unfused outputs before refusing."
    )


def merge_linear(first: nn.Linear, second: nn.Linear) -> nn.Linear:
    """One Linear computing second(first(x)), composed in float64."""
    import torch
    from torch import nn

    w1, w2 = first.weight.double(), second.weight.double()
    b1 = first.bias.double() if first.bias is not None else torch.zeros(w1.shape[0]).double()
    bias = w2 @ b1 + (second.bias.double() if second.bias is not None else 0.0)
    merged = nn.Linear(w1.shape[1], w2.shape[0], bias=True)
    dtype = first.weight.dtype
    merged.weight = nn.Parameter((w2 @ w1).to(dtype))
    merged.bias = nn.Parameter(bias.to(dtype))
    return merged


def _sole_producer(gm, node: fx.Node, kinds) -> fx.Node | None:
    """node's input when it is a call of a ``kinds`` module used by ``node`` only."""
    import torch.fx as fx

    src = node.args[0] if node.args else None
    if not isinstance(src, fx.Node) or len(src.users) != 1 or len(node.all_input_nodes) != 1:
        return None
    return src if isinstance(module_of(gm, src), kinds) else None


def _bypass(gm: fx.GraphModule, node: fx.Node, src: fx.Node) -> None:
    node.replace_all_uses_with(src)
    gm.graph.erase_node(node)


def _remove_dropouts(gm: fx.GraphModule) -> int:
    import torch
    import torch.fx as fx
    import torch.nn.functional as F

    count = 0
    for node in list(gm.graph.nodes):
        is_mod = isinstance(module_of(gm, node), drops())
        is_fn = node.op == "call_function" and node.target in (F.dropout, torch.dropout)
        if (is_mod or is_fn) and isinstance(node.args[0], fx.Node):
            _bypass(gm, node, node.args[0])
            count += 1
    return count


def _fold_batchnorms(gm: fx.GraphModule, calls: dict) -> int:
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

    count = 0
    for node in list(gm.graph.nodes):
        bn = module_of(gm, node)
        if not isinstance(bn, batchnorms()):
            continue
        src = _sole_producer(gm, node, convs() + (nn.Linear,))
        if src is None or calls[src.target] > 1 or calls[node.target] > 1:
            continue
        layer = module_of(gm, src)
        if isinstance(layer, nn.Linear):
            shape = src.meta.get("tensor_meta")
            if shape is None or len(shape.shape) != 2:
                continue  # BatchNorm1d over [N, C, L] normalises dim 1, not the features
            fused = fuse_linear_bn_eval(layer, bn)
        else:
            fused = fuse_conv_bn_eval(layer, bn)
        gm.add_submodule(src.target, fused)
        _bypass(gm, node, src)
        count += 1
    return count


def _merge_linears(gm: fx.GraphModule, calls: dict) -> int:
    from torch import nn

    count = 0
    for node in list(gm.graph.nodes):
        second = module_of(gm, node)
        if not isinstance(second, nn.Linear) or calls[node.target] > 1:
            continue
        src = _sole_producer(gm, node, (nn.Linear,))
        if src is None or calls[src.target] > 1:
            continue
        gm.add_submodule(src.target, merge_linear(module_of(gm, src), second))
        _bypass(gm, node, src)
        calls[node.target] = 0
        count += 1
    return count


def fuse_fx(module: nn.Module, inputs, config: FuseConfig) -> tuple[nn.Module, dict]:
    from torch.fx.passes.shape_prop import ShapeProp

    gm = trace(module, "fuse")
    ShapeProp(gm).propagate(*inputs)
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    stats = {"dropouts_removed": _remove_dropouts(gm) if config.remove_dropout else 0}
    stats["batchnorms_folded"] = _fold_batchnorms(gm, calls) if config.fold_batchnorm else 0
    stats["linears_merged"] = _merge_linears(gm, calls) if config.merge_linears else 0
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    return gm.eval(), stats


def _fuse_sequential(seq: nn.Sequential, config: FuseConfig, stats: dict) -> None:
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    names = list(seq._modules)
    for i, name in enumerate(names):
        mod = seq._modules[name]
        if config.remove_dropout and isinstance(mod, drops()) and not isinstance(mod, nn.Identity):
            seq._modules[name] = nn.Identity()
            stats["dropouts_removed"] += 1
        if not (config.fold_batchnorm and isinstance(mod, batchnorms()) and i):
            continue
        prev = seq._modules[names[i - 1]]
        if isinstance(prev, convs()):
            seq._modules[names[i - 1]] = fuse_conv_bn_eval(prev, mod)
            seq._modules[name] = nn.Identity()
            stats["batchnorms_folded"] += 1


def fuse_modules(module: nn.Module, config: FuseConfig, why: str) -> tuple[nn.Module, dict]:
    """Fallback without tracing: fuse inside nn.Sequential containers only."""
    from torch import nn

    stats = {"dropouts_removed": 0, "batchnorms_folded": 0, "linears_merged": 0}
    for mod in list(module.modules()):
        if isinstance(mod, nn.Sequential):
            _fuse_sequential(mod, config, stats)
        elif config.remove_dropout:
            for name, child in list(mod.named_children()):
                if isinstance(child, drops()) and not isinstance(child, nn.Identity):
                    setattr(mod, name, nn.Identity())
                    stats["dropouts_removed"] += 1
    left = [n for n, m in module.named_modules() if isinstance(m, batchnorms())]
    if config.fold_batchnorm and left:
        raise CompressorError(f"{why}; BatchNorm layer(s) {left} could not be folded without it")
    return module.eval(), stats


def _max_diff(bundle, module) -> float:
    import torch

    inputs = to_torch(bundle, bundle.example_inputs)
    with torch.no_grad():
        ref, out = bundle.module(*inputs), module(*inputs)
    refs = ref if isinstance(ref, tuple | list) else (ref,)
    outs = out if isinstance(out, tuple | list) else (out,)
    return max(float((a - b).abs().max()) for a, b in zip(refs, outs, strict=True))


@register_compressor("fuse", FuseConfig)
def fuse(bundle, config: FuseConfig, ctx):
    """Fold BatchNorm, merge consecutive Linear layers and drop Dropout/Identity."""
    before = ctx.evaluate_bundle(bundle)
    module = bundle.clone_module().eval()
    try:
        fused, stats = fuse_fx(module, to_torch(bundle, bundle.example_inputs), config)
        stats["method"] = "fx"
    except CompressorError as exc:
        fused, stats = fuse_modules(module, config, str(exc))
        stats.update(method="module-pattern", trace_error=str(exc))
    diff = _max_diff(bundle, fused)
    if diff > config.tolerance:
        raise CompressorError(f"fuse: fused outputs differ by {diff:.3g} (> {config.tolerance})")
    new = bundle.replace(module=fused)
    stats.update(metric_stats(ctx, before, ctx.evaluate_bundle(new)), max_abs_diff=diff)
    stats.update(size_bytes_before=size_bytes(bundle.module), size_bytes_after=size_bytes(fused))
    return new, stats
