"""The entropy coders compared for coded weights: what the decoder reads (store, zlib,
huffman = DEFLATE with Huffman coding only, lzma, bz2, zstd) and, for the side-by-side
measurement only, the ideal canonical Huffman size, LZW and an ANS coder (constriction).

Every shipped codec is a maintained library (the standard library's zlib / lzma / bz2, or
zstandard); only LZW, which no maintained library offers, is written here, and only measured.
"""

from __future__ import annotations

import bz2
import heapq
import lzma
import zlib
from collections import Counter
from enum import StrEnum

import numpy as np

from edgecompress.errors import CompressError
from edgecompress.storage.templates import decoder


class Codec(StrEnum):
    """A coder the standalone decoder reads."""

    store = "store"
    zlib = "zlib"
    huffman = "huffman"
    lzma = "lzma"
    bz2 = "bz2"
    zstd = "zstd"


STDLIB_CODECS = (Codec.store, Codec.zlib, Codec.huffman, Codec.lzma, Codec.bz2)


def lzma_dict_size(n: int) -> int:
    return decoder.lzma_dict_size(n)


def _deflate(data: bytes, strategy: int) -> bytes:
    """Raw DEFLATE (no zlib header or Adler-32: the container checks the decoded bytes)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15, 9, strategy)
    return c.compress(data) + c.flush()


def compress(codec: Codec, data: bytes) -> bytes:
    """``data`` coded with ``codec`` (the decoder needs only the codec and the decoded size)."""
    if codec == Codec.store:
        return data
    if codec == Codec.zlib:
        return _deflate(data, zlib.Z_DEFAULT_STRATEGY)
    if codec == Codec.huffman:
        return _deflate(data, zlib.Z_HUFFMAN_ONLY)
    if codec == Codec.lzma:
        lzma2 = {"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": lzma_dict_size(len(data))}
        return lzma.compress(data, format=lzma.FORMAT_RAW, filters=[lzma2])
    if codec == Codec.bz2:
        return bz2.compress(data, 9)
    if codec == Codec.zstd:
        zstandard = _zstandard()
        return zstandard.ZstdCompressor(level=19, write_content_size=False,
                                        write_checksum=False).compress(data)  # fmt: skip
    raise CompressError(f"unknown codec {codec!r}")


def _zstandard():
    try:
        import zstandard
    except ImportError as exc:  # pragma: no cover - zstandard is a declared dependency
        raise CompressError(
            "codec zstd needs the zstandard package (pip install zstandard)"
        ) from exc
    return zstandard


def best(data: bytes, codecs: tuple[Codec, ...]) -> tuple[Codec, bytes]:
    """The codec among ``codecs`` giving the fewest bytes (ties: the earlier one)."""
    results = [(c, compress(c, data)) for c in codecs]
    return min(results, key=lambda r: len(r[1]))


def huffman_lengths(symbols: np.ndarray) -> dict[int, int]:
    """Code length of each symbol of a canonical (static, whole-stream) Huffman code."""
    counts = Counter(symbols.tolist()) if symbols.size < 4096 else _counts(symbols)
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    heap = [(n, i, (s,)) for i, (s, n) in enumerate(sorted(counts.items()))]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    tie = len(heap)
    while len(heap) > 1:
        n1, _, a = heapq.heappop(heap)
        n2, _, b = heapq.heappop(heap)
        for s in a + b:
            lengths[s] += 1
        heapq.heappush(heap, (n1 + n2, tie, a + b))
        tie += 1
    return lengths


def _counts(symbols: np.ndarray) -> dict[int, int]:
    values, counts = np.unique(symbols, return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def huffman_size(symbols: np.ndarray) -> int:
    """Bytes of a canonical Huffman coding of ``symbols`` (uint8): the code lengths (one byte
    per possible symbol) plus the bit stream, rounded up to whole bytes."""
    if symbols.size == 0:
        return 0
    lengths = huffman_lengths(symbols)
    counts = _counts(symbols)
    bits = sum(counts[s] * lengths[s] for s in counts)
    return 256 + (bits + 7) // 8


def lzw_size(data: bytes, max_bits: int = 16) -> int:
    """Bytes of an LZW coding of ``data`` (Unix compress style: codes grow from 9 to
    ``max_bits`` bits, then the dictionary stays frozen)."""
    table = {bytes([i]): i for i in range(256)}
    bits, width, w = 0, 9, b""
    for byte in data:
        wc = w + bytes([byte])
        if wc in table:
            w = wc
            continue
        bits += width
        if len(table) < 1 << max_bits:
            table[wc] = len(table)
            if len(table) > 1 << width and width < max_bits:
                width += 1
        w = bytes([byte])
    if w:
        bits += width
    return (bits + 7) // 8


def ans_size(symbols: np.ndarray) -> int | None:
    """Bytes of an ANS coding (constriction's stack coder, a categorical model of the
    stream's own frequencies) plus the model (a 4-byte count per used symbol); None when
    constriction is not installed."""
    try:
        import constriction
    except ImportError:
        return None
    if symbols.size == 0:
        return 0
    values, counts = np.unique(symbols, return_counts=True)
    lookup = np.zeros(int(values.max()) + 1, np.int32)
    lookup[values] = np.arange(values.size)
    probs = counts.astype(np.float64) / counts.sum()
    model = constriction.stream.model.Categorical(probs, perfect=False)
    coder = constriction.stream.stack.AnsCoder()
    coder.encode_reverse(lookup[symbols].astype(np.int32), model)
    return coder.get_compressed().nbytes + 5 * values.size


def decode_check(codec: Codec, coded: bytes, raw_length: int) -> bytes:
    """Decode with the standalone decoder's own code (what a deployed zip runs)."""
    return decoder._decompress(codec.value, coded, raw_length)
