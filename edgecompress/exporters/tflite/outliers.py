"""Graph rewrites before PT2E static int8 for activations with outlier channels.

Transformers such as all-MiniLM-L6-v2 carry a few hidden channels 30-200x larger than the
rest: a per-tensor int8 scale sized for them rounds every other channel away (MiniLM full
int8 measured mean cosine 0.95 without these rewrites). Both rewrites keep the float function
of the graph (to float rounding) and act only where calibration finds outliers:

- SmoothQuant (Xiao et al. 2022) on LayerNorm -> Linear: per input channel ``s_j =
  max|x_j|^alpha / max|W_:,j|^(1 - alpha)``; the LayerNorm is cloned with weight and bias
  divided by ``s`` for the Linears (the original still feeds the residual path of post-LN
  BERT) and their weight columns are multiplied by ``s``.
- Output-channel split: a Linear whose calibrated output has channels above ``ratio`` x the
  median channel maximum gets those rows moved to a second, small int8 Linear (own
  activation scale); a float one-hot matmul scatters them back and a float add joins them.

Both run on the ``torch.export`` graph, so they apply to any model (no module names).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

MAX_SPLIT_CHANNELS = 8  # at most this many outlier rows per Linear move to the side Linear
MIN_SPLIT_FEATURES = 16  # a median needs enough channels to mean something


class OutlierOptions(BaseModel):
    """int8-full (litert-torch) rewrites for outlier channels; 0 turns one off."""

    model_config = ConfigDict(extra="forbid")

    smoothquant_alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="SmoothQuant migration strength on LayerNorm -> Linear (0: off)",
    )
    split_ratio: float = Field(
        8.0,
        ge=0,
        description="Linear output channels above this x the median channel maximum get "
        "their own int8 scale (0: off)",
    )


def rewrite_outliers(gm, samples: Iterable[tuple], alpha: float, ratio: float) -> dict:
    """SmoothQuant (``alpha`` > 0) and the output-channel split (``ratio`` > 0) on ``gm``
    in place, from the per-channel maxima over ``samples``; what was done, for the manifest."""
    if alpha <= 0 and ratio <= 0:
        return {}
    samples = list(samples)
    sample = samples[0]
    stats = channel_absmax(gm, samples)
    done = {}
    if alpha > 0:
        done["smoothquant"] = {"alpha": alpha, **smooth_layer_norms(gm, stats, alpha)}
    if ratio > 0:
        done["outlier_split"] = {"ratio": ratio, **split_outputs(gm, stats, ratio)}
    gm.graph.eliminate_dead_code()
    gm.recompile()
    _refresh_vals(gm, sample)
    return done


def _refresh_vals(gm, sample: tuple) -> None:
    """Fake-tensor ``meta["val"]`` for every node: prepare_pt2e puts output observers only
    on nodes whose ``val`` says they make a tensor (new nodes have none)."""
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    vals = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"]
    mode = next((v.fake_mode for v in vals if hasattr(v, "fake_mode")), None)
    FakeTensorProp(gm, mode).propagate(*sample)


def _aten():
    import torch

    return torch.ops.aten


def channel_absmax(gm, samples: Iterable[tuple]) -> dict:
    """Per-channel (last dim) max |value| of every Linear's input and output and of every
    LayerNorm's output, by node name."""
    import torch

    aten = _aten()
    linears = [n for n in gm.graph.nodes if n.target == aten.linear.default]
    norms = {n.name for n in gm.graph.nodes if n.target == aten.layer_norm.default}
    wanted = {n.name for n in linears} | {n.args[0].name for n in linears} | norms
    stats: dict = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in wanted and isinstance(out, torch.Tensor) and out.dim() >= 1:
                amax = out.detach().abs().reshape(-1, out.shape[-1]).amax(0).float()
                old = stats.get(n.name)
                stats[n.name] = amax if old is None else torch.maximum(old, amax)
            return out

    with torch.no_grad():
        for sample in samples:
            Recorder(gm).run(*sample)
    return stats


def _new_param(gm, base: str, value) -> object:
    """A get_attr node for a new parameter named after ``base``."""
    import torch

    base = base.replace(".", "_")
    name, i = f"{base}_eq", 0
    while hasattr(gm, name):
        i += 1
        name = f"{base}_eq{i}"
    gm.register_parameter(name, torch.nn.Parameter(value.detach().clone(), requires_grad=False))
    return gm.graph.get_attr(name)


def _passthrough(node) -> bool:
    aten = _aten()
    if node.target == aten.dropout.default:
        return len(node.args) > 2 and node.args[2] is False  # eval dropout: identity
    return node.target in (aten.clone.default, aten.alias.default)


def _linear_users(ln) -> list:
    """Linears fed by ``ln`` directly or through identity ops (eval dropout, clone)."""
    aten, found, todo = _aten(), [], list(ln.users)
    while todo:
        user = todo.pop()
        if user.target == aten.linear.default and user.args[1].op == "get_attr":
            found.append(user)
        elif _passthrough(user):
            todo.extend(user.users)
    return found


def _attr(gm, node):
    if node is None or getattr(node, "op", None) != "get_attr":
        return None
    value = gm
    for part in node.target.split("."):
        value = getattr(value, part)
    return value


def smooth_layer_norms(gm, stats: dict, alpha: float) -> dict:
    """SmoothQuant every LayerNorm (with affine weight and bias) whose output feeds Linears."""
    import torch

    aten, smoothed, linears = _aten(), 0, 0
    for ln in [n for n in gm.graph.nodes if n.target == aten.layer_norm.default]:
        users = _linear_users(ln)
        weight, bias = (_attr(gm, a) for a in (ln.args[2:4] + (None, None))[:2])
        if not users or weight is None or bias is None or ln.name not in stats:
            continue
        wmax = torch.stack([_attr(gm, u.args[1]).abs().amax(0) for u in users]).amax(0)
        xmax = stats[ln.name].clamp_min(1e-5)
        s = (xmax**alpha / wmax.clamp_min(1e-5) ** (1 - alpha)).clamp_min(1e-5).detach()
        with gm.graph.inserting_before(ln):
            w_node = _new_param(gm, ln.args[2].target, weight / s)
            b_node = _new_param(gm, ln.args[3].target, bias / s)
        with gm.graph.inserting_after(ln):
            clone = gm.graph.call_function(
                aten.layer_norm.default, (ln.args[0], ln.args[1], w_node, b_node, *ln.args[4:])
            )
        clone.meta = dict(ln.meta)
        for lin in users:
            with gm.graph.inserting_before(lin):
                w_lin = _new_param(gm, lin.args[1].target, _attr(gm, lin.args[1]) * s[None, :])
            lin.args = (clone, w_lin, *lin.args[2:])
        smoothed, linears = smoothed + 1, linears + len(users)
    return {"layer_norms": smoothed, "linears": linears}


def outlier_channels(amax, ratio: float) -> list[int]:
    """Output channels above ``ratio`` x the median channel maximum (largest first, capped)."""
    import torch

    if len(amax) < MIN_SPLIT_FEATURES:
        return []
    limit = ratio * float(amax.median())
    order = torch.argsort(amax, descending=True)[:MAX_SPLIT_CHANNELS]
    return [int(i) for i in order if float(amax[i]) > limit]


def split_outputs(gm, stats: dict, ratio: float) -> dict:
    """Move the outlier output rows of each Linear to a side Linear (see the module doc)."""
    aten, split, channels = _aten(), [], 0
    for lin in [n for n in gm.graph.nodes if n.target == aten.linear.default]:
        weight = _attr(gm, lin.args[1])
        idx = outlier_channels(stats[lin.name], ratio) if lin.name in stats else []
        if weight is None or not idx:
            continue
        _split_one(gm, lin, weight, idx)
        split.append(lin.name)
        channels += len(idx)
    return {"linears": len(split), "channels": channels}


def _split_one(gm, lin, weight, idx: list[int]) -> None:
    import torch

    aten = _aten()
    bias_node = lin.args[2] if len(lin.args) > 2 else None
    bias = _attr(gm, bias_node)
    keep = torch.ones(weight.shape[0], dtype=torch.bool)
    keep[idx] = False
    onehot = torch.zeros(len(idx), weight.shape[0], dtype=weight.dtype)
    onehot[range(len(idx)), idx] = 1.0
    base = lin.args[1].target
    with gm.graph.inserting_before(lin):
        w_main = _new_param(gm, base, weight * keep[:, None])
        w_side = _new_param(gm, f"{base}_side", weight[idx])
        b_main = None if bias is None else _new_param(gm, bias_node.target, bias * keep)
        b_side = None if bias is None else _new_param(gm, f"{bias_node.target}_side", bias[idx])
        scatter = _new_param(gm, f"{base}_scatter", onehot)
    lin.args = (lin.args[0], w_main, b_main)
    with gm.graph.inserting_after(lin):
        side = gm.graph.call_function(aten.linear.default, (lin.args[0], w_side, b_side))
    with gm.graph.inserting_after(side):
        back = gm.graph.call_function(aten.matmul.default, (side, scatter))
    with gm.graph.inserting_after(back):
        joined = gm.graph.call_function(aten.add.Tensor, (lin, back))
    lin.replace_all_uses_with(joined, delete_user_cb=lambda user: user is not joined)
    for node in (side, back, joined):
        node.meta = {k: v for k, v in lin.meta.items() if k in ("nn_module_stack", "stack_trace")}
