"""An attention padding mask whose exp() stays a normal float: finfo.min -> MASK_VALUE.

Hugging Face encoders add ``(1 - attention_mask) * finfo(float32).min`` (or a ``Where`` on it)
to the attention scores of padded keys. onnxruntime's softmax clamps exp()'s input near -104,
so a padded key's weight comes out as a *denormal* float, not 0, and the softmax and the
P·V GEMM that read those weights run on microcode assists: on MiniLM-L6 at 128 tokens with
~85 % padding, attention was most of the time (benchmarks/results/int8-token-profile.md).
Replacing that constant with ``MASK_VALUE`` (-50) keeps exp() normal (e^-50 ~ 2e-22 of the
largest weight, below float32 resolution beside it), so outputs do not change.

The rewrite is checked, not trusted: with ``feeds`` (padded batches), both graphs run and it
is refused (graph unchanged, reason in the details) when an output differs by more than
``rtol`` times the outputs' largest magnitude (at least 1), e.g. when a model's raw padded
scores lie 30+ above the real ones and -50 would no longer hide them.

Public API: ``soften_padding_mask(model, feeds, rtol) -> (model, details)``.
"""

from __future__ import annotations

import numpy as np

from edgecompress.exporters.onnx.attention_fusion import MASK_FILTER as MASK_VALUE
from edgecompress.exporters.onnx.attention_fusion import _Graph, _mask_source, max_output_diff

BIG_NEGATIVE = -1e4  # a scalar constant at or below this inside a mask is its padding value
SOFTMAX_INPUT_OPS = ("Add",)


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def mask_sites(model) -> list[tuple[object, int]]:
    """(node, input index) of every big negative scalar constant read inside the additive mask
    of a Softmax's input ``Add(scores, mask)``, the mask traced back to a 2-D integer input."""
    g, values = _Graph(model.graph), _constants(model.graph)
    sites, seen = [], set()
    for softmax in (n for n in model.graph.node if n.op_type == "Softmax"):
        add = g.producer.get(softmax.input[0])
        if add is None or add.op_type not in SOFTMAX_INPUT_OPS:
            continue
        for side in add.input:
            if _mask_source(g, side) is None:
                continue
            for node in _mask_nodes(g, side):
                for i, name in enumerate(node.input):
                    value = values.get(name)
                    if _is_big_negative(value) and (id(node), i) not in seen:
                        seen.add((id(node), i))
                        sites.append((node, i))
    return sites


def _mask_nodes(g, name: str) -> list:
    """The nodes computing ``name`` back to the graph inputs and constants."""
    nodes, todo, seen = [], [name], set()
    while todo:
        node = g.producer.get(todo.pop())
        if node is None or id(node) in seen or node.op_type == "Constant":
            continue
        seen.add(id(node))
        nodes.append(node)
        todo.extend(i for i in node.input if i)
    return nodes


def _is_big_negative(value) -> bool:
    return (
        value is not None
        and value.size == 1
        and value.dtype.kind == "f"
        and bool(value.reshape(-1)[0] <= BIG_NEGATIVE)
    )


def soften_padding_mask(model, feeds: list[dict] | None = None, rtol: float = 1e-5):
    """(model with every padding-mask constant set to MASK_VALUE, details); ``model`` itself
    is not modified and comes back, with the reason, when there is nothing to change or the
    check on ``feeds`` fails."""
    import onnx
    from onnx import numpy_helper

    sites = mask_sites(model)
    if not sites:
        return model, {"padding_mask": "unchanged (no finfo.min-style attention mask)"}
    softened = onnx.ModelProto()
    softened.CopyFrom(model)
    name = "padding_mask_value"
    softened.graph.initializer.append(
        numpy_helper.from_array(np.array([MASK_VALUE], np.float32), name)
    )
    where = {(n.name, tuple(n.input), tuple(n.output)): i for n, i in sites}
    for node in softened.graph.node:
        index = where.get((node.name, tuple(node.input), tuple(node.output)))
        if index is not None:
            node.input[index] = name
    details = {"padding_mask": MASK_VALUE, "padding_mask_constants": len(sites)}
    if not feeds:
        return softened, details
    try:
        moved = max_output_diff(model, softened, feeds, relative=True)
    except Exception as exc:  # noqa: BLE001  onnxruntime's own error, reported as the reason
        return model, {"padding_mask": f"unchanged (check failed: {str(exc).splitlines()[0]})"}
    if not moved <= rtol:
        why = f"unchanged (outputs moved by {moved:.2e} of their largest value > {rtol:.0e})"
        return model, {"padding_mask": why}
    return softened, details | {"padding_mask_max_rel_diff": float(f"{moved:.3g}")}
