"""Trained weight sharing for int8-token weights: GPTQ onto per-output-channel codebooks.

Deep Compression shares weights by k-means and then fine-tunes the centroids against the
loss. Here the int8 weights of every output channel (a column of the ONNX ``[K in, N out]``
MatMul weight) take at most ``levels`` int8 values: k-means over the channel's int8 values
picks the levels, then GPTQ (exporters/onnx/gptq.py's loop and Hessian ``E[x xᵀ]``) rounds
each weight to its channel's nearest level while moving the rounding error onto the input
columns not yet rounded, so the layer's *output* error is what gets minimised (the
compensation fine-tuning gives the paper). The codebooks and b-bit indices are what the
``rowwise`` storage layout (storage/rowwise.py) keeps.

``codebook_gptq`` has ``gptq``'s signature, so the int8-token exporter takes it in place of
plain GPTQ (benchmarks/deep_compression_minilm.py patches it in for the export).
"""

from __future__ import annotations

import numpy as np

from edgecompress.exporters.onnx.gptq import QMAX, channel_scales, gptq

VALUES = np.arange(-128, 128, dtype=np.float64)


def row_codebooks(q: np.ndarray, levels: int, iterations: int = 25) -> np.ndarray:
    """Sorted int8 levels ``[R, levels]`` per row of the int8 matrix ``q`` ``[R, C]``:
    1-D k-means over the row's values (a 256-bin histogram; linear initialisation over
    [min, max], the paper's best), centroids rounded to integers. Rows with fewer distinct
    values than ``levels`` keep them exactly (the book is padded with repeats)."""
    rows = q.shape[0]
    hist = np.zeros((rows, 256))
    np.add.at(hist, (np.repeat(np.arange(rows), q.shape[1]), q.astype(np.int64).ravel() + 128), 1)
    lo, hi = q.min(1).astype(np.float64), q.max(1).astype(np.float64)
    books = lo[:, None] + (hi - lo)[:, None] * np.linspace(0, 1, levels)[None]
    weighted = hist * VALUES[None]
    for _ in range(iterations):
        onehot = _value_index(books)[..., None] == np.arange(levels)[None, None]
        counts = np.einsum("rv,rvk->rk", hist, onehot)
        sums = np.einsum("rv,rvk->rk", weighted, onehot)
        new = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1e-300), books), 1)
        if np.allclose(new, books, rtol=0, atol=1e-9):
            break
        books = new
    books = np.sort(np.clip(np.rint(books), -QMAX, QMAX), 1)
    return _exact_small_rows(q, books).astype(np.int8)


def _exact_small_rows(q: np.ndarray, books: np.ndarray) -> np.ndarray:
    """Rows with at most ``levels`` distinct values get exactly those values as their book."""
    levels = books.shape[1]
    for r in np.flatnonzero((np.diff(np.sort(q, 1), axis=1) != 0).sum(1) < levels):
        distinct = np.unique(q[r])
        books[r] = np.concatenate([distinct, np.repeat(distinct[-1:], levels - distinct.size)])
    return books


def _value_index(books: np.ndarray) -> np.ndarray:
    """``[R, 256]``: for every int8 value, the index of its nearest level in each row's book."""
    edges = (books[:, 1:] + books[:, :-1]) / 2
    return (VALUES[None, :, None] > edges[:, None, :]).sum(2)


def snap_rows(q: np.ndarray, books: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, uint8 indices): every int8 value of row r moved to its nearest level of
    ``books[r]`` (round to nearest, no error feedback)."""
    index = np.take_along_axis(_value_index(books.astype(np.float64)), q.astype(np.int64) + 128, 1)
    values = np.take_along_axis(books, index, 1)
    return values.astype(np.int8), index.astype(np.uint8)


def uniform_levels(step: int) -> np.ndarray:
    """The int8 multiples of ``step`` in [-127, 127] (a uniform grid, ``2 * (127 // step) + 1``
    levels): shared by every channel, stored as one tensor-wide codebook and entropy coded."""
    top = QMAX // step * step
    return np.arange(-top, top + 1, step)


def codebook_gptq(
    weight_kn: np.ndarray, hessian: np.ndarray, levels: int = 16, damp: float = 0.01,
    block: int = 128, step: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """int8 ``[K, N]`` whose every column takes at most ``levels`` values, and the per-column
    scales ``[N]`` (max |w| / 127, as int8 GPTQ): the levels by k-means over the column's
    rounded-to-nearest int8 values (or, with ``step``, the uniform grid of int8 multiples of
    ``step`` for every column), the rounding by GPTQ on ``hessian`` ``[K, K]``."""
    scale = channel_scales(weight_kn)
    if step:
        grid = uniform_levels(step).astype(np.float64)
        books = np.repeat(grid[None], weight_kn.shape[1], 0)
    else:
        rtn = np.clip(np.rint(weight_kn / scale), -QMAX, QMAX).astype(np.int8)
        books = row_codebooks(rtn.T, levels).astype(np.float64)
    return gptq(weight_kn, hessian, damp, block, books=books)


def share_table_rows(src, dst, levels: int, min_rows: int = 256, step: int | None = None):
    """Write ``dst``: the ONNX model ``src`` with every int8 embedding table (a 2-D int8
    initializer of at least ``min_rows`` rows that a Gather reads; one scale per row) snapped
    to ``levels`` values per row (row_codebooks, nearest level), or with ``step`` to the
    nearest int8 multiple of ``step`` (uniform_levels); returns the tables changed."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    gathered = {n.input[0] for n in model.graph.node if n.op_type == "Gather"}
    changed = []
    for init in model.graph.initializer:
        if init.name not in gathered or init.data_type != onnx.TensorProto.INT8:
            continue
        table = numpy_helper.to_array(init)
        if table.ndim == 2 and table.shape[0] >= min_rows:
            if step:
                grid = uniform_levels(step)
                books = np.repeat(grid[None], table.shape[0], 0).astype(np.int8)
            else:
                books = row_codebooks(table, levels)
            shared, _ = snap_rows(table, books)
            init.CopyFrom(numpy_helper.from_array(shared, init.name))
            changed.append(init.name)
    onnx.save(model, str(dst))
    return changed
