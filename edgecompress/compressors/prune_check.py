"""Proof that structured pruning removed channels and nothing else.

Removing a channel group is exact when every layer that reads the removed channels simply stops
reading them. So the pruned model must compute what the original computes with those input
slices of its Conv/Linear consumers set to zero ("cut"), to float precision. Torch-Pruning
treats an op it does not know as element-wise; when such an op mixes channels (a channel
shuffle, a view that splits the channel axis), the pruned model still runs but removes the
wrong inputs: this check catches it, and the group at fault is named with its ops. Groups with
norms over channels (LayerNorm, GroupNorm) or other multi-channel layers are not exact under a
cut: they are pruned in the reference too and only checked for running and output shapes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgecompress.errors import CompressorError

if TYPE_CHECKING:
    import torch
    from torch import nn

TOLERANCE = 1e-4  # of the output's scale; float reordering alone stays near 1e-6


@dataclass
class GroupPlan:
    """One channel group: its root layer, the channels it removes, and what it touches."""

    layer: str
    before: int
    after: int
    remove: list[int] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)  # layers whose output channels shrink
    ops: list[str] = field(default_factory=list)  # non-layer ops the channels pass through
    cuts: list[tuple[str, list[int]]] = field(default_factory=list)  # (consumer, input idxs)
    exact: bool = True  # a cut reproduces the pruning (per-channel layers only)

    def row(self) -> dict:
        return {"layer": self.layer, "channels_before": self.before,
                "channels_after": self.after, "layers": self.layers}  # fmt: skip


def cannot_follow(plan: GroupPlan, why: str) -> CompressorError:
    through = ", ".join(f"'{op}'" for op in plan.ops) or "no op Torch-Pruning names"
    return CompressorError(
        f"structured pruning: cannot follow the {plan.before} channels of layer '{plan.layer}' "
        f"through op(s) {through}: {why}; leave them whole with skip: ['{plan.layer}'], or "
        "prune with method 'unstructured' or 'n:m' instead"
    )


def outputs(module: nn.Module, inputs) -> list[torch.Tensor]:
    import torch

    with torch.no_grad():
        out = module.eval()(*inputs)
    if isinstance(out, dict):
        out = list(out.values())
    out = list(out) if isinstance(out, tuple | list) else [out]
    return [t for t in out if isinstance(t, torch.Tensor)]


def cut(module: nn.Module, plans: list[GroupPlan]) -> nn.Module:
    """Zero the input slices each consumer reads from the removed channels, in place."""
    import torch

    with torch.no_grad():
        for plan in plans:
            for name, idxs in plan.cuts:
                layer = module.get_submodule(name)
                w = layer.weight
                if isinstance(layer, torch.nn.Linear) or layer.groups == 1:
                    w[:, idxs] = 0
                    continue
                per_in, per_out = layer.in_channels // layer.groups, w.shape[0] // layer.groups
                for i in idxs:
                    g = i // per_in
                    w[g * per_out : (g + 1) * per_out, i % per_in] = 0
    return module


def mismatch(pruned: list, reference: list) -> str | None:
    """Why ``pruned`` outputs differ from ``reference`` (shapes or values), else None."""
    shapes = [tuple(t.shape) for t in pruned]
    want = [tuple(t.shape) for t in reference]
    if shapes != want:
        return f"the output shapes change from {want} to {shapes}"
    for got, ref in zip(pruned, reference, strict=True):
        if not got.is_floating_point():
            continue
        diff = float((got - ref).abs().max()) if got.numel() else 0.0
        scale = max(1.0, float(ref.abs().max()) if ref.numel() else 1.0)
        if diff > TOLERANCE * scale:
            return (
                f"the remaining channels no longer compute what they did (max output "
                f"difference {diff:.3g} where cutting the removed channels gives 0)"
            )
    return None


def run_failure(module: nn.Module, inputs) -> tuple[list | None, str | None]:
    try:
        return outputs(module, inputs), None
    except Exception as exc:  # the pruned model no longer runs: say how
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return None, f"the pruned model fails ({type(exc).__name__}: {first})"


def verify(pruned, pristine, inputs, plans, apply_plans) -> str | None:
    """Why the pruned model is not the cut original, else None. ``apply_plans(model, plans)``
    really prunes (used for the groups a cut cannot reproduce)."""
    got, why = run_failure(pruned, inputs)
    if why:
        return why
    reference = copy.deepcopy(pristine)
    inexact = [p for p in plans if not p.exact]
    if inexact:
        apply_plans(reference, inexact)
    cut(reference, [p for p in plans if p.exact])
    return mismatch(got, outputs(reference, inputs))


def find_culprit(pristine, inputs, plans, apply_plans) -> None:
    """Check the groups one at a time on fresh copies; raise naming the first that fails."""
    for plan in plans:
        pruned = copy.deepcopy(pristine)
        apply_plans(pruned, [plan])
        why = verify(pruned, pristine, inputs, [plan], apply_plans)
        if why:
            raise cannot_follow(plan, why)
