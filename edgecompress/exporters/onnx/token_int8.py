"""int8-token: per-token int8 activations, GPTQ int8 weights, outlier channels kept float.

onnxruntime's dynamic int8 (``quantize_dynamic``, Optimum's configs) gives a whole activation
tensor one scale. Transformer activations break that twice: a few input channels carry
values 10-20x the median (LayerNorm gains, GELU tails), and tokens differ in range. On
all-MiniLM-L6-v2 (514 test sentences, torch fp32 reference) activation error alone took
1 - cosine to 5.8e-3 and top-1 neighbour agreement to 87 %. This pass, per MatMul input:

1. calibrates, over the recipe's train split, every MatMul input's per-channel max |x| and
   ``E[x xᵀ]`` (rows of padding tokens left out);
2. keeps the ``outlier_channels`` input channels of largest max |x| in float (a tiny MatMul);
3. quantizes the rest per token (one scale and zero point per row, computed at run time) and
   multiplies with onnxruntime's u8s8 integer GEMM (MatMulIntegerToFloat);
4. rounds the int8 weights with GPTQ on the calibrated ``E[x xᵀ]`` (or to nearest).

MatMuls that read the same tensor (Q, K and V) are quantized once and multiplied as one.
Measured (benchmarks/results/minilm-peers.md, batch 1 / 128 tokens / 1 thread, this 2-core
EPYC): mean / min cosine 0.9998 / 0.9994 (dynamic int8: 0.9934 / 0.9813), neighbour agreement
97.1 % (87.7 %), 0.455x the fp32 latency (0.365x).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecompress.errors import ExportError
from edgecompress.exporters.onnx.attention_fusion import fuse_attention
from edgecompress.exporters.onnx.gptq import gptq, round_to_nearest
from edgecompress.exporters.onnx.token_fused import FusedGroupBuilder
from edgecompress.exporters.onnx.token_graph import GroupBuilder, Member
from edgecompress.exporters.onnx.token_sensitivity import plan_input
from edgecompress.progress import log


@dataclass
class Target:
    """A MatMul ``x @ W`` with a constant 2-D W, and the bias Add after it if there is one."""

    matmul: object
    add: object | None
    weight: np.ndarray  # [K, N]
    bias: np.ndarray  # [N] (zeros without an Add)

    @property
    def output(self) -> str:
        return (self.add or self.matmul).output[0]


def find_targets(graph, exclude: list[str]) -> dict[str, list[Target]]:
    """Input tensor name -> the constant-weight MatMuls reading it (node order kept)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    groups: dict[str, list[Target]] = {}
    for node in graph.node:
        if node.op_type != "MatMul" or node.name in exclude or node.input[1] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if weight.ndim != 2 or weight.dtype != np.float32 or node.input[0] in inits:
            continue
        add, bias = _bias_add(node, consumers, inits, weight.shape[1])
        groups.setdefault(node.input[0], []).append(Target(node, add, weight, bias))
    return groups


def _bias_add(node, consumers, inits, n: int):
    from onnx import numpy_helper

    users = consumers.get(node.output[0], [])
    if len(users) == 1 and users[0].op_type == "Add":
        other = [i for i in users[0].input if i != node.output[0]]
        if len(other) == 1 and other[0] in inits:
            bias = numpy_helper.to_array(inits[other[0]])
            if bias.shape == (n,) and bias.dtype == np.float32:
                return users[0], bias
    return None, np.zeros(n, np.float32)


@dataclass
class InputStats:
    amax: np.ndarray  # [K] max |x| per channel
    xtx: np.ndarray  # [K, K] sum of x xᵀ over rows
    rows: int = 0
    sample_rows: int = 0  # rows kept in ``sample`` (only per_token auto reads them)
    sample: list = field(default_factory=list)

    def add(self, x2: np.ndarray) -> None:
        self.amax = np.maximum(self.amax, np.abs(x2).max(0))
        x64 = x2.astype(np.float64)
        self.xtx += x64.T @ x64
        room = self.sample_rows - sum(len(s) for s in self.sample)
        if room > 0:
            self.sample.append(x2[:room].astype(np.float32))
        self.rows += len(x2)


def calibrate(
    model, names: list[str], batches: list[dict], sample_rows: int = 0
) -> dict[str, InputStats]:
    """Run the float model over ``batches`` with every name in ``names`` as an extra output;
    keep the first ``sample_rows`` rows of each."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(
        onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None) for n in names
    )
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(probe.SerializeToString(), options, ["CPUExecutionProvider"])
    wanted = [i.name for i in session.get_inputs()]
    stats: dict[str, InputStats] = {}
    for feeds in batches:
        outs = session.run(names, {k: feeds[k] for k in wanted})
        keep = _real_rows(feeds)
        for name, value in zip(names, outs, strict=True):
            x2 = _rows(value, keep)
            k = x2.shape[1]
            empty = InputStats(np.zeros(k, np.float32), np.zeros((k, k)), sample_rows=sample_rows)
            stats.setdefault(name, empty).add(x2)
    return stats


def _real_rows(feeds: dict):
    mask = feeds.get("attention_mask")
    return None if mask is None else np.asarray(mask).astype(bool)


def _rows(value: np.ndarray, keep) -> np.ndarray:
    """``value`` as [rows, K]; with a [B, L] attention mask, padding tokens dropped."""
    if keep is not None and value.ndim == 3 and value.shape[:2] == keep.shape:
        return value[keep]
    return value.reshape(-1, value.shape[-1])


SAMPLE_ROWS = 2048
PER_TOKEN = ("all", "none", "auto")  # fused only
SCHEMES = ("exact", "fused")  # token_graph.py (default) | token_fused.py (not faster: see docs)


def quantize_token_int8(
    src: Path,
    dst: Path,
    batches: list[dict],
    outlier_channels: int = 8,
    exclude: list[str] | None = None,
    use_gptq: bool = True,
    embeddings: bool = True,
    scheme: str = "exact",
    per_token: str = "auto",
    tolerance: float = 1.5,
    attention_fusion: bool = False,
    rounding=None,
) -> dict:
    """Write ``dst``: ``src`` with every constant-weight MatMul as an int8-token group.

    ``scheme`` exact: per-row scale and zero point, MatMulIntegerToFloat and a rank-(k+2)
    correction (token_graph.py); fused: onnxruntime's DynamicQuantizeMatMul on row-normalised
    inputs (token_fused.py; fewer nodes, but not measurably faster here and less accurate:
    benchmarks/results/int8-token-profile.md). ``per_token`` (fused only): all (per-token with
    outlier channels everywhere) | none (per-tensor with outlier channels) | auto (per input,
    the cheapest form within ``tolerance`` x the least estimated noise: token_sensitivity).
    ``attention_fusion``: each float attention core as one MultiHeadAttention node, checked
    on the float graph with the first calibration batches (attention_fusion.py; opt-in:
    MiniLM 0.79x of Optimum at 128 padded tokens, unchanged at real lengths). ``rounding``:
    ``(weight [K, N], hessian) -> (int8, scales)`` in place of int8 GPTQ (sharing.py's grids)."""
    import onnx

    if scheme not in SCHEMES:
        raise ExportError(f"int8-token: scheme '{scheme}' is not one of {', '.join(SCHEMES)}")
    if per_token not in PER_TOKEN:
        raise ExportError(
            f"int8-token: per_token '{per_token}' is not one of {', '.join(PER_TOKEN)}"
        )
    started = time.perf_counter()
    model = onnx.load(str(src))
    float_model, attention = model, {"attention": "unfused"}
    if attention_fusion:  # on the float graph (checked there); calibrated on the unfused one
        model, attention = fuse_attention(model, batches[:8])
    groups = find_targets(model.graph, exclude or [])
    if not groups:
        raise ExportError(f"int8-token: {src.name} has no MatMul with a constant 2-D weight")
    log.info("int8-token: calibrating %d MatMul inputs", len(groups))
    sampled = SAMPLE_ROWS if scheme == "fused" and per_token == "auto" else 0
    stats = calibrate(float_model, list(groups), batches, sampled)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
    rounding = rounding or (gptq if use_gptq else None)
    plans = {x: _plan(x, stats[x], outlier_channels, scheme, per_token, tolerance) for x in groups}
    built = []
    for i, (x, targets) in enumerate(groups.items()):
        token_rows, outliers = plans[x]
        members = _members(targets, stats[x], outliers, rounding)
        if scheme == "exact":
            builder = GroupBuilder(f"tq{i}", opset)
        else:
            builder = FusedGroupBuilder(f"tq{i}", opset, per_token=token_rows)
        builder.build(x, len(stats[x].amax), outliers, members)
        built.append(builder)
    _splice(model, groups, built)
    tables = quantize_embedding_tables(model) if embeddings else 0
    onnx.save(model, str(dst))
    return {
        "int8_token": {
            "matmuls": sum(len(t) for t in groups.values()),
            "groups": len(groups),
            "scheme": scheme,
            "per_token_groups": sum(p[0] for p in plans.values()),
            "outlier_groups": sum(len(p[1]) > 0 for p in plans.values()),
            "outlier_channels": outlier_channels,
            "weights": _rounding_name(rounding),
            "embedding_tables_int8": tables,
            "calibration_rows": int(max(s.rows for s in stats.values())),
            "seconds": round(time.perf_counter() - started, 1),
            **attention,
        }
    }


def _rounding_name(rounding) -> str:
    """gptq | codebook_gptq (a functools.partial) | round-to-nearest."""
    if rounding is None:
        return "round-to-nearest"
    return getattr(getattr(rounding, "func", rounding), "__name__", "custom")


def _plan(x: str, stats: InputStats, k: int, scheme: str, policy: str, tolerance: float):
    """(per-token scales?, the outlier channels kept float) for the input ``x``."""
    idx = _outliers(x, stats, k)
    if scheme == "exact" or policy == "all":
        return True, idx
    if policy == "none":
        return False, idx
    token, keep = plan_input(np.concatenate(stats.sample), idx, tolerance)
    return token, idx if keep else idx[:0]


def _outliers(x: str, stats: InputStats, outliers: int) -> np.ndarray:
    """The ``outliers`` input channels of largest calibrated max |x| (at most K / 8), sorted."""
    if stats.rows == 0:
        raise ExportError(f"int8-token: calibration saw no rows of '{x}'")
    k = min(outliers, len(stats.amax) // 8)
    return np.sort(np.argsort(-stats.amax)[:k]).astype(np.int64)


def _members(targets, stats: InputStats, idx: np.ndarray, rounding) -> list[Member]:
    """Each MatMul's int8 weights (outlier rows zeroed, ``rounding`` on E[x xT], None: to
    nearest) and float rows."""
    hessian = stats.xtx / stats.rows
    hessian[idx, :] = 0
    hessian[:, idx] = 0
    members = []
    for t in targets:
        w = t.weight.copy()
        w[idx, :] = 0  # the outlier rows are multiplied in float
        q, scale = rounding(w, hessian) if rounding else round_to_nearest(w)
        members.append(Member(t.output, q, scale, t.bias, t.weight[idx, :]))
    return members


def _splice(model, groups: dict[str, list[Target]], built: list) -> None:
    """Replace each group's MatMul/Add nodes with its builder's nodes, at the first MatMul."""
    graph = model.graph
    first = {id(t[0].matmul): b for t, b in zip(groups.values(), built, strict=True)}
    gone = {id(n) for targets in groups.values() for t in targets for n in (t.matmul, t.add) if n}
    nodes = []
    for node in graph.node:
        if id(node) in first:
            nodes.extend(first[id(node)].nodes)
        if id(node) not in gone:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(i for b in built for i in b.inits)
    _drop_unused_initializers(graph)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        from onnx import helper

        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))


def _drop_unused_initializers(graph) -> None:
    """Remove the initializers no node reads any more (the replaced float weights)."""
    used = {name for node in graph.node for name in node.input}
    keep = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def quantize_embedding_tables(model, min_rows: int = 256) -> int:
    """Embedding tables (a Gather on a constant [V >= min_rows, D] float table: words,
    positions) to int8 with one scale per row: Gather both, Cast, Mul. Plain ONNX ops; the
    vocabulary table is most of a small encoder's bytes (MiniLM-L6: 46.9 of 90 MB). Returns
    the number of tables replaced."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, replaced = [], 0
    for node in graph.node:
        table = inits.get(node.input[0]) if node.op_type == "Gather" else None
        attrs = {a.name: a.i for a in node.attribute}
        if table is None or len(table.dims) != 2 or table.dims[0] < min_rows or attrs.get("axis"):
            nodes.append(node)
            continue
        weights = numpy_helper.to_array(table)
        scale = np.maximum(np.abs(weights).max(1, keepdims=True), 1e-12) / 127
        p = f"eq{replaced}"
        q = np.clip(np.rint(weights / scale), -127, 127).astype(np.int8)
        graph.initializer.extend(
            [numpy_helper.from_array(q, f"{p}_q"), numpy_helper.from_array(scale, f"{p}_s")]
        )
        ids = node.input[1]
        nodes += [
            helper.make_node("Gather", [f"{p}_q", ids], [f"{p}_rows"], f"{p}_gq"),
            helper.make_node("Gather", [f"{p}_s", ids], [f"{p}_scales"], f"{p}_gs"),
            helper.make_node("Cast", [f"{p}_rows"], [f"{p}_f"], f"{p}_cast", to=TensorProto.FLOAT),
            helper.make_node("Mul", [f"{p}_f", f"{p}_scales"], list(node.output), f"{p}_mul"),
        ]
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unused_initializers(graph)
    return replaced
