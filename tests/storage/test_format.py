"""Coded weights: bit-exact round trips over shapes, sparsities and bit widths; corrupt or
truncated files raise clear errors (StorageError here, ValueError in the standalone decoder)."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecompress.storage import codecs
from edgecompress.storage import format as fmt
from edgecompress.storage.codecs import Codec
from edgecompress.storage.templates import decoder


def clustered(shape, bits: int, sparsity: float, dtype, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "float32-half":  # float32 values float16 holds exactly (stored as float16)
        book = rng.normal(size=2**bits).astype(np.float16).astype(np.float32)
    elif np.dtype(dtype).kind == "f":
        book = rng.normal(size=2**bits).astype(dtype)
    else:
        info = np.iinfo(dtype)
        book = rng.integers(info.min, info.max, size=2**bits, endpoint=True).astype(dtype)
    values = book[rng.integers(0, book.size, size=shape)]
    values[rng.random(shape) < sparsity] = 0
    return values


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=st.lists(st.integers(1, 32), min_size=1, max_size=4),
    bits=st.integers(2, 8),
    sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
    dtype=st.sampled_from(["float32", "float32-half", "float16", "int8", "uint8", "int32"]),
    seed=st.integers(0, 2**16),
)
def test_clustered_tensors_decode_bit_identical(shape, bits, sparsity, dtype, seed):
    array = clustered(tuple(shape), bits, sparsity, dtype, seed)
    blob = fmt.encode({"w": array})
    out = fmt.decode(blob)["w"]
    assert out.dtype == array.dtype and out.shape == array.shape
    assert out.tobytes() == array.tobytes()
    # the standalone decoder (what a zip runs) agrees
    assert decoder.decode(blob)["w"].tobytes() == array.tobytes()


def test_layouts_chosen_by_size_and_exact_for_special_floats():
    rng = np.random.default_rng(0)
    dense = np.linspace(-1, 1, 16, dtype=np.float32)[rng.integers(0, 16, (64, 64))]
    sparse = dense.copy()
    sparse[rng.random(sparse.shape) < 0.95] = 0
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45] * 20, np.float32)
    noise = rng.normal(size=(64, 64)).astype(np.float32)
    arrays = {"dense": dense, "sparse": sparse, "special": special, "noise": noise}
    coded = {n: fmt.code_tensor(n, a) for n, a in arrays.items()}
    assert coded["dense"].layout == "dense" and coded["sparse"].layout == "sparse"
    assert coded["noise"].layout == "raw"
    # 16 values: 4 bits each at most before entropy coding
    assert coded["dense"].nbytes < dense.size * 4 / 8 + 200
    assert coded["sparse"].nbytes < coded["dense"].nbytes / 3
    out = fmt.decode(fmt.write(list(coded.values())))
    assert out["special"].tobytes() == special.tobytes()  # -0.0 and NaN kept bit for bit


def test_gap_bytes_cover_long_runs():
    positions = np.array([0, 1, 255, 256, 1000, 70_000])
    gaps = fmt.gap_bytes(positions)
    assert decoder.gap_positions(gaps).tolist() == positions.tolist()
    assert (gaps == 0).sum() == (254 // 255) + (744 - 1) // 255 + (69_000 - 1) // 255


@pytest.mark.parametrize("codec", list(codecs.STDLIB_CODECS) + [Codec.zstd])
def test_every_codec_round_trips(codec):
    if codec == Codec.zstd:
        pytest.importorskip("zstandard")
    data = bytes(np.random.default_rng(1).integers(0, 5, 5000, dtype=np.uint8))
    coded = codecs.compress(codec, data)
    assert codecs.decode_check(codec, coded, len(data)) == data


def test_measured_only_coders_give_sizes():
    symbols = np.random.default_rng(2).choice(4, 20_000, p=[0.7, 0.1, 0.1, 0.1]).astype(np.uint8)
    entropy = 20_000 * 1.357 / 8  # bits of this distribution
    assert entropy < codecs.huffman_size(symbols) - 256 < 1.2 * entropy
    assert codecs.lzw_size(symbols.tobytes()) < symbols.size
    ans = codecs.ans_size(symbols)
    assert ans is None or entropy < ans < 1.02 * entropy + 64


@pytest.fixture
def blob():
    rng = np.random.default_rng(3)
    tensors = {"a": clustered((50, 40), 4, 0.8, "float32", 1), "b": rng.normal(size=300)}
    return fmt.encode(tensors)


def test_truncated_file_is_an_error_naming_the_problem(blob):
    for cut in (3, 20, len(blob) - 1):
        with pytest.raises(fmt.StorageError, match="truncated|too short"):
            fmt.decode(blob[:cut])
    with pytest.raises(ValueError, match="truncated"):
        decoder.decode(blob[:-10])


def test_corrupt_payload_names_the_tensor(blob):
    header = decoder.read_header(blob)
    t = header["tensors"][0]
    stream = next(iter(t["streams"].values()))
    at = header["payload_start"] + stream["offset"]
    bad = bytearray(blob)
    bad[at] ^= 0xFF
    with pytest.raises(fmt.StorageError, match=f"tensor {t['name']!r}.*corrupt"):
        fmt.decode(bytes(bad))


def test_corrupt_header_and_magic(blob):
    bad = bytearray(blob)
    bad[decoder.PREAMBLE.size + 5] ^= 0x01
    with pytest.raises(fmt.StorageError, match="header truncated or corrupt"):
        fmt.decode(bytes(bad))
    with pytest.raises(fmt.StorageError, match="bad magic"):
        fmt.decode(b"PK\x03\x04" + blob[4:])
    newer = struct.pack("<4sB", decoder.MAGIC, 9) + blob[5:]
    with pytest.raises(fmt.StorageError, match="format version 9"):
        fmt.decode(newer)


def test_wrong_values_with_a_readable_stream_caught_by_crc32():
    """A stored stream whose bytes change still decodes, but never into wrong weights."""
    array = np.arange(100, dtype=np.float32) * 1.37
    t = fmt.code_tensor("w", array, allowed=(Codec.store,))
    assert t.layout == "raw"
    blob = bytearray(fmt.write([t]))
    blob[-5] ^= 0x01
    with pytest.raises(fmt.StorageError, match="tensor 'w': CRC32 mismatch"):
        fmt.decode(bytes(blob))


def test_every_flipped_byte_is_an_error_or_harmless(blob):
    """Flip each byte of a coded file in turn: decoding raises ValueError or (a flipped bit
    the codec ignores, e.g. DEFLATE's final padding) returns the very same tensors."""
    good = decoder.decode(blob)
    for at in range(len(blob)):
        bad = bytearray(blob)
        bad[at] ^= 0x5A
        try:
            out = decoder.decode(bytes(bad))
        except ValueError:
            continue
        assert all(out[n].tobytes() == good[n].tobytes() for n in good), f"byte {at}"


@pytest.mark.parametrize("codec", [Codec.huffman, Codec.zlib, Codec.lzma, Codec.bz2])
def test_truncated_stream_is_an_error(codec):
    array = np.repeat(np.arange(40, dtype=np.uint8), 50)
    t = fmt.code_tensor("w", array, allowed=(codec,))
    s = next(iter(t.streams.values()))
    s.coded = s.coded[:-2]
    with pytest.raises(fmt.StorageError, match="tensor 'w'"):
        fmt.decode(fmt.write([t]))


def test_float16_exact_values_stored_as_float16():
    rng = np.random.default_rng(4)
    book = rng.normal(size=32).astype(np.float16).astype(np.float32)
    weights = book[rng.integers(0, 32, (300, 100))]
    weights[rng.random(weights.shape) < 0.9] = 0
    bias = rng.normal(size=300).astype(np.float16).astype(np.float32)
    coded = {n: fmt.code_tensor(n, a) for n, a in (("w", weights), ("b", bias))}
    assert coded["w"].layout == "sparse" and coded["w"].half
    assert coded["b"].layout == "raw" and coded["b"].half
    assert coded["b"].nbytes <= bias.size * 2 + 16
    full = fmt.code_tensor("w", weights + np.float32(1e-4) * (weights != 0))  # not exact
    assert not full.half
    out = fmt.decode(fmt.write(list(coded.values())))
    assert out["w"].dtype == np.float32 and out["w"].tobytes() == weights.tobytes()
    assert out["b"].tobytes() == bias.tobytes()


def test_header_is_compact():
    """A tensor costs a few header bytes (name, codes, varint sizes, CRC32), not a JSON entry."""
    tensors = {f"layer{i}.bias": np.full(20, i, np.int8) for i in range(20)}
    blob = fmt.encode(tensors)
    header = decoder.read_header(blob)
    assert header["payload_start"] - decoder.PREAMBLE.size < 20 * 12
    assert header["tensors"][3]["name"] == "layer3.bias"
    assert header["tensors"][3]["shape"] == [20]
