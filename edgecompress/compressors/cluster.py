"""Weight sharing ("trained quantization", Deep Compression): per-layer k-means over each
Conv/Linear weight's non-zero values, so that a layer takes at most 2**bits distinct values
(plus the zeros pruning left, which stay zero and are not clustered), optionally followed by
fine-tuning the centroids (each centroid's gradient is the sum over its cluster's weights).

The clustered module keeps float weights that take few distinct values; the exported ONNX
initializers do too, and the storage encoder (edgecompress/storage) recovers the codebook and
indices from them exactly.
"""

from __future__ import annotations

import fnmatch
from enum import StrEnum

import numpy as np
from pydantic import Field, field_validator, model_validator

from edgecompress.compressors.codebook_gptq import row_codebooks, snap_rows
from edgecompress.compressors.common import metric_stats, prunable_weights, size_bytes
from edgecompress.compressors.finetune import finetune
from edgecompress.errors import CompressorError
from edgecompress.metrics import metric_drop
from edgecompress.registry import StepConfig, register_compressor


class CentroidInit(StrEnum):
    """How k-means starts: 'linear' spaces centroids evenly over [min, max] of the weights
    (the paper's best), 'density' at evenly spaced quantiles, 'random' at sampled weights."""

    linear = "linear"
    density = "density"
    random = "random"


class ClusterConfig(StepConfig):
    """Share weights: k-means per layer (2-8 bits), zeros kept, optional centroid fine-tuning."""

    conv_bits: int = Field(8, ge=2, le=8, description="Bits per Conv weight (2**bits centroids).")
    linear_bits: int = Field(5, ge=2, le=8, description="Bits per Linear weight.")
    layer_bits: dict[str, int] = Field(
        default_factory=dict,
        description="fnmatch pattern of layer names -> bits, overriding conv_bits/linear_bits "
        "(first match wins; a pattern matching no layer is an error).",
    )
    init: CentroidInit = Field(CentroidInit.linear, description="k-means initialisation.")
    iterations: int = Field(30, ge=1, le=1000, description="k-means iterations (at most).")
    accuracy_budget: float | None = Field(
        None, ge=0.0,
        description="Max metric drop allowed: each layer gets the fewest bits (from min_bits up "
        "to its configured bits) whose drop alone fits, then all layers gain a bit until the "
        "whole model fits (fine-tuning happens after the choice).",
    )  # fmt: skip
    min_bits: int = Field(2, ge=2, le=8, description="Budget search: fewest bits tried.")
    bias_bits: int | None = Field(
        None, ge=2, le=8,
        description="Share each layer's bias too: k-means with this many bits (fine-tuned "
        "with the weights); None keeps the biases as they are.",
    )  # fmt: skip
    float16_codebooks: bool = Field(
        False,
        description="Round the centroids to float16 values (straight-through while "
        "fine-tuning), so coded storage keeps float16 codebooks and decodes bit-identically.",
    )
    finetune_epochs: int = Field(0, ge=0, description="Epochs of centroid fine-tuning.")
    lr: float = Field(1e-4, gt=0.0, description="Fine-tuning learning rate (AdamW).")
    batch_size: int = Field(32, ge=1, description="Fine-tuning batch size.")

    @field_validator("layer_bits")
    @classmethod
    def _bits_range(cls, value: dict[str, int]) -> dict[str, int]:
        bad = {k: v for k, v in value.items() if not 2 <= v <= 8}
        if bad:
            raise ValueError(f"layer_bits must be between 2 and 8, got {bad}")
        return value

    @model_validator(mode="after")
    def _min_bits(self):
        if self.min_bits > max(self.conv_bits, self.linear_bits):
            raise ValueError(f"min_bits ({self.min_bits}) exceeds conv_bits and linear_bits")
        return self


def kmeans_1d(
    values: np.ndarray,
    k: int,
    init: CentroidInit = CentroidInit.linear,
    iterations: int = 30,
    weights: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted centroids, index of each value's centroid) of 1-D k-means (``weights``: counts
    per value). Fewer distinct values than ``k``: each is its own centroid, exactly."""
    values = np.asarray(values, np.float64).reshape(-1)
    w = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    distinct = np.unique(values)
    if distinct.size <= k:
        return distinct, np.searchsorted(distinct, values)
    centroids = _init(values, distinct, k, init, seed)
    for _ in range(iterations):
        idx = _assign(values, centroids)
        sums = np.bincount(idx, w * values, k)
        counts = np.bincount(idx, w, k)
        new = np.where(counts > 0, sums / np.maximum(counts, 1e-300), centroids)
        new.sort()
        if np.allclose(new, centroids, rtol=0, atol=1e-12):
            centroids = new
            break
        centroids = new
    centroids = np.unique(centroids)
    return centroids, _assign(values, centroids)


def _init(values, distinct, k: int, init: CentroidInit, seed: int) -> np.ndarray:
    if init == CentroidInit.linear:
        return np.linspace(values.min(), values.max(), k)
    if init == CentroidInit.density:
        return np.unique(np.quantile(values, np.linspace(0, 1, k)))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(distinct, k, replace=False))


def _assign(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (centroids sorted)."""
    edges = (centroids[1:] + centroids[:-1]) / 2
    return np.searchsorted(edges, values)


def layer_bits(module, config: ClusterConfig) -> dict[str, int]:
    """Bits of every Conv/Linear layer: layer_bits patterns first, then conv/linear bits."""
    from torch import nn

    layers = prunable_weights(module)
    if not layers:
        raise CompressorError("cluster: the model has no Conv/Linear weights to cluster")
    unused = [p for p in config.layer_bits if not any(fnmatch.fnmatch(n, p) for n, _ in layers)]
    if unused:
        raise CompressorError(f"cluster: layer_bits patterns match no layer: {unused}")
    out = {}
    for name, layer in layers:
        match = next((b for p, b in config.layer_bits.items() if fnmatch.fnmatch(name, p)), None)
        default = config.linear_bits if isinstance(layer, nn.Linear) else config.conv_bits
        out[name] = match if match is not None else default
    return out


def cluster_weight(weight, bits: int, config: ClusterConfig, seed: int = 0):
    """(codebook float32 tensor, long index tensor, bool mask of non-zeros) for one weight."""
    import torch

    w = weight.detach().cpu().numpy().astype(np.float32)
    mask = w != 0
    centroids, idx = kmeans_1d(w[mask], 2**bits, config.init, config.iterations, seed=seed)
    indices = np.zeros(w.shape, np.int64)
    indices[mask] = idx
    if config.float16_codebooks:
        centroids = centroids.astype(np.float16)
    book = torch.from_numpy(centroids.astype(np.float32).reshape(-1))
    if book.numel() == 0:
        book = torch.zeros(1)
    return book, torch.from_numpy(indices), torch.from_numpy(mask)


def _shared_parametrization():
    import torch
    from torch import nn

    class SharedWeight(nn.Module):
        """weight = codebook[indices] where the mask keeps it, exactly 0 elsewhere."""

        def __init__(self, codebook, indices, mask, half: bool = False):
            super().__init__()
            self.codebook = nn.Parameter(codebook)
            self.register_buffer("indices", indices)
            self.register_buffer("mask", mask)
            self.half = half  # centroids used as float16 values (straight-through gradient)

        def forward(self, _original):
            book = self.codebook
            if self.half:
                book = book + (book.half().float() - book).detach()
            return torch.where(self.mask, book[self.indices], 0.0)

    return SharedWeight


def apply_sharing(module, bits: dict[str, int], config: ClusterConfig, trainable: bool) -> None:
    """Replace each layer's weight by its clustered values (a parametrization when
    ``trainable``: the centroids are then the parameters fine-tuning updates)."""
    import torch
    from torch.nn.utils import parametrize

    shared = _shared_parametrization()
    layers = dict(prunable_weights(module))
    for i, (name, b) in enumerate(bits.items()):
        layer = layers[name]
        kinds = [("weight", b)]
        if config.bias_bits and getattr(layer, "bias", None) is not None:
            kinds.append(("bias", config.bias_bits))
        for kind, kind_bits in kinds:
            book, idx, mask = cluster_weight(getattr(layer, kind), kind_bits, config, seed=i)
            if trainable:
                share = shared(book, idx, mask, config.float16_codebooks)
                parametrize.register_parametrization(layer, kind, share, unsafe=True)
                getattr(layer.parametrizations, kind).original.requires_grad_(False)
            else:
                with torch.no_grad():
                    getattr(layer, kind).copy_(torch.where(mask, book[idx], 0.0))


def bake(module) -> None:
    """Turn the fine-tuned parametrizations back into plain (clustered) weights."""
    from torch.nn.utils import parametrize

    for _, layer in prunable_weights(module):
        for kind in ("weight", "bias"):
            if parametrize.is_parametrized(layer, kind):
                parametrize.remove_parametrizations(layer, kind, leave_parametrized=True)


def coded_bits(module, bits: dict[str, int], gap_bits: int = 5) -> dict:
    """Storage before entropy coding, as the paper counts it: an index of ``bits`` bits per
    non-zero weight (plus a ``gap_bits`` relative position where the layer has zeros) and a
    float32 codebook per layer; other parameters as float32."""
    layers = dict(prunable_weights(module))
    nonzero = {n: int((layers[n].weight != 0).sum()) for n in bits}
    gaps = {n: gap_bits if nonzero[n] < layers[n].weight.numel() else 0 for n in bits}
    index_bits = sum(nonzero[n] * (b + gaps[n]) for n, b in bits.items())
    books = sum(32 * 2**b for b in bits.values())
    weights = sum(layers[n].weight.numel() * 32 for n in bits)
    other = size_bytes(module) * 8 - weights
    return {"index_bytes": index_bits // 8, "codebook_bytes": books // 8, "other_bytes": other // 8}


def _drop(bundle, ctx, before: dict, module) -> float:
    after = ctx.evaluate_bundle(bundle.replace(module=module.eval()))
    return metric_drop(before["metric"], before["value"], after["value"])


def budget_bits(bundle, config: ClusterConfig, ctx, before: dict) -> dict[str, int]:
    """Fewest bits per layer whose drop alone fits the budget, then one more bit for every
    layer still below its maximum until the whole model fits (or all are at the maximum)."""
    maximum = layer_bits(bundle.module, config)
    chosen = {}
    for name, top in maximum.items():
        for b in range(min(config.min_bits, top), top + 1):
            trial = bundle.clone_module()
            apply_sharing(trial, {name: b}, config, trainable=False)
            if b == top or _drop(bundle, ctx, before, trial) <= config.accuracy_budget:
                chosen[name] = b
                break
    while True:
        trial = bundle.clone_module()
        apply_sharing(trial, chosen, config, trainable=False)
        if _drop(bundle, ctx, before, trial) <= config.accuracy_budget:
            return chosen
        if all(chosen[n] >= maximum[n] for n in chosen):
            return chosen
        chosen = {n: min(b + 1, maximum[n]) for n, b in chosen.items()}


@register_compressor("cluster", ClusterConfig)
def cluster(bundle, config: ClusterConfig, ctx):
    """Share weights (k-means per layer, Deep Compression), zeros kept, centroids fine-tuned."""
    if bundle.module is None:
        raise CompressorError("cluster needs a torch model (this bundle is ONNX-only)")
    before = ctx.evaluate_bundle(bundle)
    if config.accuracy_budget is None:
        bits = layer_bits(bundle.module, config)
    else:
        bits = budget_bits(bundle, config, ctx, before)
    module = bundle.clone_module()
    apply_sharing(module, bits, config, trainable=bool(config.finetune_epochs))
    clustered = bundle.replace(module=module.eval())
    stats: dict = {"bits": bits, "init": config.init.value}
    if config.finetune_epochs:
        stats["metric_before_finetune"] = ctx.evaluate_bundle(clustered)["value"]
        finetune(module, bundle, ctx, config.finetune_epochs, config.lr, config.batch_size,
                 reference=bundle.module)  # fmt: skip
        bake(module)
    after = ctx.evaluate_bundle(clustered)
    layers = dict(prunable_weights(module))
    stats.update(metric_stats(ctx, before, after))
    stats.update(
        distinct_values={n: int(layers[n].weight.detach().unique().numel()) for n in bits},
        size_bytes_before=size_bytes(bundle.module),
        **coded_bits(module, bits),
        finetune_epochs=config.finetune_epochs,
    )
    return clustered, stats


def cluster_int8_array(array: np.ndarray, bits: int, init: CentroidInit = CentroidInit.linear):
    """k-means over the values of an int8 / uint8 tensor (weighted by their counts): at most
    2**bits integer levels, each value moved to its nearest level (lossy)."""
    values, counts = np.unique(array, return_counts=True)
    centroids, _ = kmeans_1d(values.astype(np.float64), 2**bits, init, 100, weights=counts)
    info = np.iinfo(array.dtype)
    levels = np.unique(np.clip(np.rint(centroids), info.min, info.max))
    lut = np.zeros(256, array.dtype)
    lut_idx = values.astype(np.int64) - info.min
    lut[lut_idx] = levels[_assign(values.astype(np.float64), levels)].astype(array.dtype)
    return lut[array.astype(np.int64) - info.min]


def cluster_int8_onnx(
    src, dst, bits: int, min_elements: int = 4096, per_channel: bool = False
) -> list[str]:
    """Write ``dst``: the ONNX model ``src`` with every int8 / uint8 initializer of at least
    ``min_elements`` values clustered to 2**bits levels (``per_channel``: 2-D int8 ones with
    one codebook per output column, per row for a table a Gather reads: the "columns" /
    "rows" storage layouts); returns the names changed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    inits = {init.name: init for init in model.graph.initializer}
    gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
    changed = []
    for init in list(model.graph.initializer):
        array = numpy_helper.to_array(init)
        if array.dtype in (np.int8, np.uint8) and array.size >= min_elements:
            if per_channel and array.dtype == np.int8 and array.ndim == 2:
                clustered = cluster_int8_channels(array, bits, init.name in gathered)
            else:
                clustered = cluster_int8_array(array, bits)
            init.CopyFrom(numpy_helper.from_array(clustered, init.name))
            _fix_token_colsum(model, inits, init.name, clustered)
            changed.append(init.name)
    onnx.save(model, str(dst))
    return changed


def cluster_int8_channels(array: np.ndarray, bits: int, by_row: bool) -> np.ndarray:
    """k-means over each row (``by_row``) or column of an int8 matrix: 2**bits levels each."""
    x = array if by_row else array.T
    shared, _ = snap_rows(x, row_codebooks(x, 2**bits))
    return shared if by_row else np.ascontiguousarray(shared.T)


def _fix_token_colsum(model, inits: dict, name: str, wq: np.ndarray) -> None:
    """int8-token graphs (exporters/onnx/token_graph.py) precompute colsum(Wq) * w_scale as
    the second-to-last row of the Gemm weight after MatMulIntegerToFloat -> Mul -> Gemm:
    recompute it from the clustered weights."""
    from onnx import numpy_helper

    nodes = model.graph.node
    mm = [n for n in nodes if n.op_type == "MatMulIntegerToFloat" and n.input[1] == name]
    for node in mm:
        muls = [n for n in nodes if n.op_type == "Mul" and node.output[0] in n.input]
        gemms = [n for n in nodes for m in muls if n.op_type == "Gemm" and m.output[0] in n.input]
        scale = numpy_helper.to_array(inits[node.input[3]]).astype(np.float32)
        for gemm in gemms:
            wr = numpy_helper.to_array(inits[gemm.input[1]]).copy()
            wr[-2] = wq.astype(np.int64).sum(0).astype(np.float32) * scale
            inits[gemm.input[1]].CopyFrom(numpy_helper.from_array(wr, gemm.input[1]))
