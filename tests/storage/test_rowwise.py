"""Per-row / per-column codebooks ("rows" / "columns" layouts): exact round trips in the
library and the standalone decoder, chosen when smaller, and corrupt books rejected."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecompress.storage import format as fmt
from edgecompress.storage import rowwise
from edgecompress.storage.templates import decoder


def per_book(shape, levels: int, layout: str, dtype, seed: int) -> np.ndarray:
    """A tensor whose every row (column) takes at most ``levels`` values of its own book."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape)
    books = shape[0] if layout == "rows" else shape[-1]
    if np.dtype(dtype).kind == "f":
        book = rng.normal(size=(books, levels)).astype(dtype)
    else:
        book = rng.integers(-128, 127, size=(books, levels), endpoint=True).astype(dtype)
    n = int(np.prod(shape)) // books
    x = np.take_along_axis(book, rng.integers(0, levels, (books, n)), 1)
    return (x if layout == "rows" else x.T).reshape(shape)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(1, 24), min_size=2, max_size=3),
    levels=st.sampled_from([1, 2, 4, 16, 64]),
    layout=st.sampled_from(["rows", "columns"]),
    dtype=st.sampled_from(["int8", "float32", "float16"]),
    seed=st.integers(0, 2**16),
)
def test_split_join_and_decoder_are_exact(shape, levels, layout, dtype, seed):
    array = per_book(shape, levels, layout, dtype, seed)
    books, indices = rowwise.split(array, layout)
    assert books.shape[1] <= levels and indices.dtype == np.uint8
    assert rowwise.join(books, indices, list(array.shape), layout).tobytes() == array.tobytes()
    coded = fmt.code_tensor("w", array)
    blob = fmt.write([coded])
    assert fmt.decode(blob)["w"].tobytes() == array.tobytes()
    assert decoder.decode(blob)["w"].tobytes() == array.tobytes()


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_per_channel_books_win_over_one_tensor_book(layout):
    # 384 x 256 int8, 16 levels per channel drawn from the whole int8 range: a tensor-wide
    # book needs 8-bit indices, per-channel books 4-bit ones
    array = per_book((384, 256), 16, layout, "int8", 0)
    coded = fmt.code_tensor("w", array)
    assert coded.layout == layout
    assert coded.nbytes < 0.6 * array.size  # ~4 bits per weight + the books
    assert fmt.decode(fmt.write([coded]))["w"].tobytes() == array.tobytes()


def test_split_refuses_vectors_and_rows_with_too_many_values():
    assert rowwise.split(np.arange(10, dtype=np.int8), "rows") is None
    wide = np.arange(-128, 128, dtype=np.int16).astype(np.int8).reshape(1, 256)
    assert rowwise.split(wide, "rows") is None
    assert rowwise.split(wide, "columns") is not None  # 256 columns of one value each


def test_index_past_a_rows_book_is_an_error_not_garbage():
    array = per_book((8, 32), 4, "rows", "int8", 1)
    books, indices = rowwise.split(array, "rows")
    entry = {"name": "w", "shape": [8, 32], "layout": "rows"}
    bad = indices.copy()
    bad[3, 5] = books.shape[1]  # one past this row's book
    with pytest.raises(ValueError, match="'w': index past the codebook"):
        decoder._per_book(books.reshape(-1), bad.reshape(-1), entry, array.size)
    with pytest.raises(ValueError, match="'w': codebooks do not fit its shape"):
        decoder._per_book(books.reshape(-1)[:-1], indices.reshape(-1), entry, array.size)


@pytest.mark.parametrize(
    ("shape", "layout", "dtype"),
    [((5000, 3), "rows", "int8"), ((40, 300), "columns", "uint8"), ((7, 9), "rows", "float32")],
)
def test_decoder_lookup_paths_match_numpy_indexing(shape, layout, dtype):
    """One byte table per book (few int8 books), numpy indexing (many books, wider values):
    both give what take_along_axis gives."""
    array = per_book(shape, 16, layout, np.int8 if dtype == "uint8" else dtype, 1)
    array = array.astype(dtype)
    books, indices = rowwise.split(array, layout)
    entry = {"name": "w", "shape": list(shape), "layout": layout}
    flat = decoder._per_book(books.reshape(-1), indices.reshape(-1), entry, array.size)
    assert flat.tobytes() == array.tobytes()
    codebook = np.unique(array)
    dense = np.searchsorted(codebook, array.reshape(-1)).astype(np.uint8)
    assert decoder._lookup(codebook, dense).tobytes() == array.tobytes()
