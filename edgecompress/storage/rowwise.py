"""Per-row and per-column codebooks: the "rows" and "columns" layouts of coded weights.

A tensor whose every row (the tensor as ``[shape[0], -1]``) or every column (as
``[-1, shape[-1]]``) takes few distinct values, as per-channel weight sharing leaves it
(compressors/codebook_gptq.py: int8 MatMul weights with one codebook per output column; an
embedding table with one per token row), is stored as one codebook of ``L`` values per row
(or column) and one uint8 index per element, rows (columns) back to back. A tensor-wide
codebook of the same tensor can need up to rows x L entries and 8-bit indices; per row the
indices take log2(L) bits before entropy coding.

Lossless: ``split`` recovers the books and indices from the values exactly; the standalone
decoder (templates/decoder.py) rebuilds the tensor from them.
"""

from __future__ import annotations

import numpy as np

MAX_LEVELS = 64  # rows with more distinct values are not tried (a tensor-wide book wins)
AXES = {"rows": 0, "columns": 1}


def oriented(array: np.ndarray, layout: str) -> np.ndarray:
    """The tensor as ``[books, elements per book]``: rows of ``[shape[0], -1]`` or columns
    of ``[-1, shape[-1]]`` (transposed, so every book's elements are contiguous)."""
    if layout == "rows":
        return array.reshape(array.shape[0], -1)
    return array.reshape(-1, array.shape[-1]).T


def split(array: np.ndarray, layout: str, max_levels: int = MAX_LEVELS):
    """(codebooks ``[books, L]`` of the array's dtype, uint8 indices ``[books, n]``) with L
    the most distinct values any row (column) takes, books padded with their last value; None
    when the tensor has fewer than 2 dims, or some row (column) takes more than
    ``max_levels`` values."""
    if array.ndim < 2 or array.size == 0:
        return None
    x = np.ascontiguousarray(oriented(array, layout))
    bits = x.view(f"u{x.dtype.itemsize}")  # exact: -0.0 and NaNs are their own values
    order = np.argsort(bits, axis=1, kind="stable")
    ranked = np.take_along_axis(bits, order, 1)
    new = np.ones(ranked.shape, bool)
    new[:, 1:] = ranked[:, 1:] != ranked[:, :-1]
    rank = np.cumsum(new, 1) - 1
    levels = int(rank[:, -1].max()) + 1
    if levels > max_levels:
        return None
    books = np.repeat(ranked[:, -1:], levels, 1)
    np.put_along_axis(books, rank, ranked, 1)
    indices = np.empty(x.shape, np.uint8)
    np.put_along_axis(indices, order, rank.astype(np.uint8), 1)
    return books.view(x.dtype), indices


def join(books: np.ndarray, indices: np.ndarray, shape: list[int], layout: str) -> np.ndarray:
    """The tensor from per-row (per-column) books and indices (the decoder does the same)."""
    x = np.take_along_axis(books, indices.astype(np.int64), 1)
    if layout == "rows":
        return x.reshape(shape)
    return np.ascontiguousarray(x.T).reshape(shape)
