"""Fuse each BERT-style attention core of an ONNX graph into one com.microsoft.MultiHeadAttention.

The core a TorchScript export of a BERT-like encoder leaves (and int8-token leaves float):
Q, K, V (each [B, S, hidden], the outputs of the projections) reshaped to heads and transposed,
``Softmax(Q Kᵀ / sqrt(d) + mask) V``, transposed back and reshaped to [B, S, hidden]. The
additive mask is ``(1 - attention_mask) * big_negative`` built from the int [B, S] input.
onnxruntime's ``MultiHeadAttention`` (contrib op, CPU kernel since 1.14) takes the projected
Q, K, V and an int32 ``key_padding_mask`` [B, S] (1 = token, 0 = padding) and does the rest in
one kernel. The projections, whatever they are (float MatMuls, int8-token groups), stay as
they are; only the nodes between them and the output projection are replaced. Padded keys get
``MASK_FILTER`` (-50), not finfo.min: the latter's exp() is a denormal that slows onnxruntime's
softmax and P·V GEMM ~3x on a padded batch (see MASK_FILTER).

The rewrite is checked, not trusted: with ``feeds``, the fused and unfused graphs run on them
and the rewrite is refused (the graph comes back unchanged, with the reason in the details)
when any output differs by more than ``atol``.

Public API: ``fuse_attention(model, feeds, atol) -> (model, details)`` and
``fuse_attention_file(src, dst, feeds, atol) -> details``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MASK_OPS = ("Mul", "Sub", "Cast", "Unsqueeze", "Reshape", "Expand", "Where", "Not", "Equal")
HEAD_PERM = [0, 2, 1, 3]


@dataclass
class Core:
    """One matched attention core: its Q/K/V inputs, mask input, heads, scale, the nodes."""

    query: str
    key: str
    value: str
    mask_input: str
    num_heads: int
    head_size: int
    scale: float  # the factor on Q Kᵀ
    output: str
    nodes: list

    @property
    def scale_attr(self) -> float | None:
        """None when the graph's scale is the op's default 1 / sqrt(head size) (older
        onnxruntime builds may not read the ``scale`` attribute), else the scale."""
        default = 1 / math.sqrt(self.head_size)
        return None if math.isclose(self.scale, default, rel_tol=1e-6) else self.scale


class _Graph:
    def __init__(self, graph):
        from onnx import numpy_helper

        self.graph = graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for node in graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)
        self.inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.inputs = {i.name: i for i in graph.input}

    def const(self, name: str):
        """The value of an initializer or a Constant node's output, else None."""
        from onnx import numpy_helper

        if name in self.inits:
            return self.inits[name]
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant" and node.attribute:
            attr = node.attribute[0]
            if attr.name == "value":
                return numpy_helper.to_array(attr.t)
        return None

    def node(self, name: str, op: str):
        node = self.producer.get(name)
        return node if node is not None and node.op_type == op else None

    def only_consumer(self, name: str, op: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and users[0].op_type == op else None

    def attr(self, node, key: str, default=None):
        from onnx import helper

        for a in node.attribute:
            if a.name == key:
                return helper.get_attribute_value(a)
        return default

    def shape_tail(self, name: str) -> list | None:
        """The last two entries of a Reshape's shape input (constant or Concat of constants)."""
        value = self.const(name)
        if value is not None:
            return [int(v) for v in value.reshape(-1)[-2:]]
        concat = self.node(name, "Concat")
        if concat is None:
            return None
        parts = [self.const(i) for i in concat.input[-2:]]
        if any(p is None or p.size != 1 for p in parts):
            return None
        return [int(p.reshape(-1)[0]) for p in parts]


def _split_heads(g: _Graph, name: str, perm: list[int]):
    """``Transpose(perm)(Reshape(x, [.., heads, d]))`` -> (x, heads, d, nodes) or None."""
    tr = g.node(name, "Transpose")
    if tr is None or list(g.attr(tr, "perm", [])) != perm:
        return None
    rs = g.node(tr.input[0], "Reshape")
    tail = g.shape_tail(rs.input[1]) if rs is not None else None
    if tail is None or min(tail) <= 0:
        return None
    return rs.input[0], tail[0], tail[1], [rs, tr]


def _scores(g: _Graph, name: str):
    """``MatMul(q, kᵀ)`` optionally divided / multiplied by a scalar -> (matmul, scale, nodes)."""
    node = g.producer.get(name)
    scale, nodes = 1.0, []
    if node is not None and node.op_type in ("Div", "Mul"):
        c = g.const(node.input[1])
        if c is None or c.size != 1:
            return None
        scale = 1.0 / float(c.reshape(-1)[0]) if node.op_type == "Div" else float(c.reshape(-1)[0])
        nodes, node = [node], g.producer.get(node.input[0])
    if node is None or node.op_type != "MatMul":
        return None
    return node, scale, nodes + [node]


def _mask_source(g: _Graph, name: str) -> str | None:
    """The one integer [B, S] graph input an additive mask is computed from, else None."""
    from onnx import TensorProto

    seen, todo, found = set(), [name], set()
    while todo:
        current = todo.pop()
        if current in seen or g.const(current) is not None:
            continue
        seen.add(current)
        if current in g.inputs:
            found.add(current)
            continue
        node = g.producer.get(current)
        if node is None or node.op_type not in MASK_OPS:
            return None
        todo.extend(i for i in node.input if i)
    if len(found) != 1:
        return None
    source = g.inputs[next(iter(found))].type.tensor_type
    ints = (TensorProto.INT64, TensorProto.INT32)
    rank = len(source.shape.dim) if source.HasField("shape") else 2
    return next(iter(found)) if source.elem_type in ints and rank == 2 else None


def match_core(g: _Graph, softmax) -> tuple[Core | None, str]:
    """The attention core around ``softmax``, or (None, why not)."""
    if g.attr(softmax, "axis", -1) not in (-1, 3):
        return None, "softmax not over the last axis"
    add = g.node(softmax.input[0], "Add")
    if add is None:
        return None, "no additive mask before the softmax"
    for i in (0, 1):
        scored = _scores(g, add.input[i])
        if scored is not None:
            mask_add, (qk, scale, score_nodes) = add.input[1 - i], scored
            break
    else:
        return None, "the softmax input is not Q Kᵀ (+ scale) + mask"
    q = _split_heads(g, qk.input[0], HEAD_PERM)
    k = _split_heads(g, qk.input[1], [0, 2, 3, 1])
    pv = g.only_consumer(softmax.output[0], "MatMul")
    v = _split_heads(g, pv.input[1], HEAD_PERM) if pv is not None else None
    if q is None or k is None or v is None:
        return None, "Q, K or V is not a reshape-to-heads + transpose of a [B, S, hidden] tensor"
    if len({(h, d) for _, h, d, _ in (q, k, v)}) != 1:
        return None, "Q, K and V disagree on heads / head size"
    merge = g.only_consumer(pv.output[0], "Transpose")
    if merge is None or list(g.attr(merge, "perm", [])) != HEAD_PERM:
        return None, "the attention output is not transposed back to [B, S, heads, d]"
    out = [n for n in g.consumers.get(merge.output[0], []) if n.op_type == "Reshape"]
    mask = _mask_source(g, mask_add)
    if len(out) != 1 or mask is None:
        return None, "no reshape to [B, S, hidden] after the core" if len(out) != 1 else (
            "the additive mask is not computed from an integer [B, S] graph input"
        )
    nodes = q[3] + k[3] + v[3] + score_nodes + [add, softmax, pv, merge, out[0]]
    if _escapes(g, nodes):
        return None, "a tensor inside the core is also read outside it"
    core = Core(q[0], k[0], v[0], mask, q[1], q[2], scale, out[0].output[0], nodes)
    return core, ""


def _escapes(g: _Graph, nodes: list) -> bool:
    """Whether any node but the last has an output read by a node outside ``nodes`` (Shape
    nodes aside: they only size the final reshape, and are pruned with it) or by the graph."""
    inside = {id(n) for n in nodes}
    outputs = {o.name for o in g.graph.output}
    for node in nodes[:-1]:
        for name in node.output:
            users = g.consumers.get(name, [])
            if name in outputs or any(id(u) not in inside and u.op_type != "Shape" for u in users):
                return True
    return False


def find_cores(model) -> tuple[list[Core], list[str]]:
    """Every matched core, and why each other Softmax did not match."""
    g = _Graph(model.graph)
    cores, misses = [], []
    for node in model.graph.node:
        if node.op_type == "Softmax":
            core, why = match_core(g, node)
            if core is None:
                misses.append(f"{node.name or node.output[0]}: {why}")
            else:
                cores.append(core)
    return cores, misses


def _rewrite(model, cores: list[Core]):
    """A copy of ``model`` with every core replaced by a MultiHeadAttention node."""
    import onnx
    from onnx import helper

    fused = onnx.ModelProto()
    fused.CopyFrom(model)
    graph = fused.graph
    gone = {n.name or n.output[0] for c in cores for n in c.nodes}
    last = {c.nodes[-1].name or c.nodes[-1].output[0]: c for c in cores}
    build = _MaskInput()
    nodes: list = []
    for node in graph.node:
        key = node.name or node.output[0]
        core = last.get(key)
        if core is not None:
            nodes.extend(build.attention(core, len(nodes)))
        elif key not in gone:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(build.shared + nodes)
    graph.initializer.extend(build.inits)
    _prune(graph)
    if not any(o.domain == "com.microsoft" for o in fused.opset_import):
        fused.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return fused


def _mha_node(core: Core, inputs: list[str], i: int, scale: float | None):
    from onnx import helper

    node = helper.make_node(
        "MultiHeadAttention",
        inputs,
        [core.output],
        f"mha_{i}",
        domain="com.microsoft",
        num_heads=core.num_heads,
    )
    if scale is not None:
        node.attribute.append(helper.make_attribute("scale", scale))
    node.attribute.append(helper.make_attribute("mask_filter_value", MASK_FILTER))
    return node


# Added to a padded key's score. HF's finfo.min (and the op's default -10000) make exp() of it
# a denormal float, not 0, and the softmax and P·V GEMM then crawl through microcode assists
# (measured: MiniLM int8-token at 128 tokens with ~85 % padding, 13.5 -> 10 ms at 1 thread).
# exp(-50 + s_pad - s_max) is a normal float far below float32 resolution next to the largest
# weight (1), so the result is unchanged (the check below verifies it on real sentences).
MASK_FILTER = -50.0


class _MaskInput:
    """The int [B, S] mask as the op's int32 key_padding_mask, once per mask input."""

    def __init__(self):
        self.shared, self.inits, self.masks = [], [], {}

    def attention(self, core: Core, i: int) -> list:
        from onnx import TensorProto, helper

        mask = self.masks.get(core.mask_input)
        if mask is None:
            mask = self.masks[core.mask_input] = f"mha_mask_{len(self.masks)}"
            self.shared.append(
                helper.make_node(
                    "Cast", [core.mask_input], [mask], f"{mask}_cast", to=TensorProto.INT32
                )
            )
        inputs = [core.query, core.key, core.value, "", mask]
        return [_mha_node(core, inputs, i, core.scale_attr)]


def _prune(graph) -> None:
    """Drop nodes whose outputs nothing reads (the old mask and shape subgraphs), and the
    initializers no node reads any more."""
    keep_names = {o.name for o in graph.output}
    nodes = list(graph.node)
    while True:
        used = keep_names | {i for n in nodes for i in n.input}
        alive = [n for n in nodes if any(o in used for o in n.output)]
        if len(alive) == len(nodes):
            break
        nodes = alive
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    inits = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def max_output_diff(a, b, feeds: list[dict], relative: bool = False) -> float:
    """The largest |a - b| over every output of two models on ``feeds`` (onnxruntime, CPU);
    ``relative``: divided by the largest |a| (at least 1)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    sessions = [
        ort.InferenceSession(m.SerializeToString(), options, ["CPUExecutionProvider"])
        for m in (a, b)
    ]
    wanted = [i.name for i in sessions[0].get_inputs()]
    worst, largest = 0.0, 1.0
    for feed in feeds:
        outs = [s.run(None, {k: feed[k] for k in wanted}) for s in sessions]
        for x, y in zip(*outs, strict=True):
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            worst = max(worst, float(np.abs(x - y).max(initial=0.0)))
            largest = max(largest, float(np.abs(x).max(initial=0.0)))
    return worst / largest if relative else worst


def fuse_attention(model, feeds: list[dict] | None = None, atol: float = 1e-5):
    """(model with every attention core as MultiHeadAttention, details); ``model`` itself
    unchanged, with the reason, when no core matches, one does not, or the check fails."""
    cores, misses = find_cores(model)
    details: dict = {"attention": "unfused"}
    if not cores or misses:
        why = "; ".join(misses) or "no Softmax attention core in the graph"
        return model, details | {"attention_fusion_refused": why}
    fused = _rewrite(model, cores)
    details = {"attention": "MultiHeadAttention", "attention_cores": len(cores)}
    if feeds:
        try:
            diff = max_output_diff(model, fused, feeds)
        except Exception as exc:  # noqa: BLE001  onnxruntime's own error, reported as the reason
            why = f"onnxruntime could not run the fused graph: {str(exc).splitlines()[0]}"
            return model, {"attention": "unfused", "attention_fusion_refused": why}
        if not diff <= atol:
            why = f"fused outputs differ by {diff:.2e} > {atol:.0e} on the check feeds"
            return model, {"attention": "unfused", "attention_fusion_refused": why}
        details["attention_max_abs_diff"] = float(f"{diff:.3g}")
    return fused, details


def fuse_attention_file(
    src: Path, dst: Path, feeds: list[dict] | None = None, atol: float = 1e-5
) -> dict:
    """``fuse_attention`` from ``src`` into ``dst`` (a copy of ``src`` when refused)."""
    import onnx

    model, details = fuse_attention(onnx.load(str(src)), feeds, atol)
    onnx.save(model, str(dst))
    return details
