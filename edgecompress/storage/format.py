"""Writing (and checked reading) of coded weights files: the container the standalone decoder
(templates/decoder.py) reads. Per tensor the writer picks the smallest of the layouts it fits
(raw; dense codebook + uint8 indices; sparse codebook + indices + run-length gaps) and, per
stream, the smallest of the allowed codecs; float32 codebooks and raw tensors whose values
float16 holds exactly are stored as float16. The header is binary (varints, one-byte codes),
raw-DEFLATEd, with one CRC32 per tensor over its decoded bytes."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

from edgecompress.errors import CompressError
from edgecompress.storage import codecs, rowwise
from edgecompress.storage.codecs import Codec
from edgecompress.storage.templates import decoder

MAX_CODEBOOK = 256
# Candidates not tried (they cannot win): a codebook over bytes with more than 128 distinct
# values (the raw bytes are the same stream, relabelled); gaps where over half are non-zero.
SPARSE_MAX_DENSITY = 0.5


class StorageError(CompressError):
    """A coded weights file is corrupt, truncated, or cannot be written (exit 1)."""


@dataclass
class Stream:
    codec: Codec
    coded: bytes
    raw_length: int


@dataclass
class CodedTensor:
    name: str
    dtype: str
    shape: list[int]
    layout: str  # raw | dense | sparse
    streams: dict[str, Stream]
    crc32: int
    shuffle: bool = False
    half: bool = False  # float32 values (codebook or raw) stored as float16, exactly

    @property
    def nbytes(self) -> int:
        return sum(len(s.coded) for s in self.streams.values())


def bits_view(flat: np.ndarray) -> np.ndarray:
    """The elements as unsigned integers of the same width (exact: -0.0 and NaNs survive)."""
    return flat.view(f"u{flat.dtype.itemsize}")


def gap_bytes(positions: np.ndarray) -> np.ndarray:
    """Run-length gaps (uint8) of increasing positions: g in 1..255 steps g, 0 steps 255."""
    steps = np.diff(positions.astype(np.int64), prepend=-1)
    fillers = (steps - 1) // 255
    rest = (steps - 255 * fillers).astype(np.uint8)
    out = np.zeros(int(fillers.sum()) + steps.size, np.uint8)
    ends = np.cumsum(fillers + 1) - 1
    out[ends] = rest
    return out


def _stream(data: np.ndarray, allowed: tuple[Codec, ...]) -> Stream:
    raw = np.ascontiguousarray(data).tobytes()
    codec, coded = codecs.best(raw, allowed)
    return Stream(codec, coded, len(raw))


def narrow(values: np.ndarray) -> tuple[np.ndarray, bool]:
    """(values as float16, True) when they are float32 that float16 holds bit for bit, else
    (values, False)."""
    if values.dtype != np.float32:
        return values, False
    half = values.astype(np.float16)
    if np.array_equal(half.astype(np.float32).view(np.uint32), values.view(np.uint32)):
        return half, True
    return values, False


def _raw(flat: np.ndarray, allowed) -> list[tuple[str, dict[str, Stream], bool, bool]]:
    """Plain and byte-plane-shuffled raw candidates (float16 when exact)."""
    values, half = narrow(flat)
    size = values.dtype.itemsize
    plain = bits_view(values).view(np.uint8) if size > 1 else values.view(np.uint8)
    out = [("raw", {"values": _stream(plain, allowed)}, False, half)]
    if size > 1:
        shuffled = plain.reshape(-1, size).T.reshape(-1)
        out.append(("raw", {"values": _stream(shuffled, allowed)}, True, half))
    return out


def _candidates(flat: np.ndarray, allowed) -> list[tuple[str, dict[str, Stream], bool, bool]]:
    out = _raw(flat, allowed)
    size = flat.dtype.itemsize
    bits = bits_view(flat)
    uniq, inverse = np.unique(bits, return_inverse=True)
    if uniq.size <= MAX_CODEBOOK and not (size == 1 and uniq.size > MAX_CODEBOOK // 2):
        book, half = narrow(uniq.view(flat.dtype))
        dense = {
            "codebook": _stream(bits_view(book).view(np.uint8), allowed),
            "indices": _stream(inverse.astype(np.uint8), allowed),
        }
        out.append(("dense", dense, False, half))
        nonzero = np.flatnonzero(bits)
        if nonzero.size <= SPARSE_MAX_DENSITY * flat.size:
            nz_uniq, nz_inv = np.unique(bits[nonzero], return_inverse=True)
            book, half = narrow(nz_uniq.view(flat.dtype))
            sparse = {
                "codebook": _stream(bits_view(book).view(np.uint8), allowed),
                "indices": _stream(nz_inv.astype(np.uint8), allowed),
                "gaps": _stream(gap_bytes(nonzero), allowed),
            }
            out.append(("sparse", sparse, False, half))
    return out


def _per_book(array: np.ndarray, allowed) -> list[tuple[str, dict[str, Stream], bool, bool]]:
    """ "rows" / "columns" candidates: a codebook per row or column (storage/rowwise.py)."""
    out = []
    for layout in rowwise.AXES:
        found = rowwise.split(array, layout)
        if found is not None:
            book, half = narrow(found[0].reshape(-1))
            streams = {"codebook": _stream(bits_view(book).view(np.uint8), allowed),
                       "indices": _stream(found[1], allowed)}  # fmt: skip
            out.append((layout, streams, False, half))
    return out


def code_tensor(name: str, array: np.ndarray, allowed=codecs.STDLIB_CODECS) -> CodedTensor:
    """The smallest coding of ``array`` over the layouts it fits and the ``allowed`` codecs."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    if array.dtype.name not in decoder.DTYPES:
        raise StorageError(f"coded weights: tensor {name!r}: dtype {array.dtype} not supported")
    flat = array.reshape(-1)
    layout, streams, shuffle, half = min(
        _candidates(flat, tuple(allowed)) + _per_book(array, tuple(allowed)),
        key=lambda c: sum(len(s.coded) for s in c[1].values()),
    )
    crc = zlib.crc32(array.tobytes())
    return CodedTensor(name, array.dtype.str, list(array.shape), layout, streams, crc, shuffle,
                       half)  # fmt: skip


def _varint(n: int) -> bytes:
    return decoder._varint(int(n))


def _entry(t: CodedTensor) -> bytes:
    name = t.name.encode("utf-8")
    out = [_varint(len(name)), name, bytes([decoder.DTYPES.index(np.dtype(t.dtype).name)])]
    out += [_varint(len(t.shape))] + [_varint(d) for d in t.shape]
    flags = list(decoder.LAYOUTS).index(t.layout)
    flags |= (decoder.SHUFFLE if t.shuffle else 0) | (decoder.HALF if t.half else 0)
    out.append(bytes([flags]))
    for key in decoder.LAYOUTS[t.layout]:
        s = t.streams[key]
        out += [bytes([decoder.CODECS.index(s.codec.value)]), _varint(len(s.coded)),
                _varint(s.raw_length)]  # fmt: skip
    out.append(struct.pack("<I", t.crc32))
    return b"".join(out)


def write(tensors: list[CodedTensor]) -> bytes:
    """The coded weights file holding ``tensors``."""
    header = _varint(len(tensors)) + b"".join(_entry(t) for t in tensors)
    raw = codecs.compress(Codec.zlib, header)
    preamble = decoder.PREAMBLE.pack(decoder.MAGIC, decoder.VERSION, len(raw), zlib.crc32(raw))
    payload = b"".join(s.coded for t in tensors for s in (t.streams[k] for k in
                       decoder.LAYOUTS[t.layout]))  # fmt: skip
    return preamble + raw + payload


def encode(tensors: dict[str, np.ndarray], allowed=codecs.STDLIB_CODECS) -> bytes:
    """Code every tensor of ``tensors`` into one weights file."""
    return write([code_tensor(n, a, allowed) for n, a in tensors.items()])


def decode(blob: bytes) -> dict[str, np.ndarray]:
    """The tensors of a coded weights file; StorageError (naming the tensor) when it is
    corrupt or truncated."""
    try:
        return decoder.decode(blob)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StorageError(f"{exc}") from exc


def describe(blob: bytes) -> list[dict]:
    """Per tensor: name, layout, shape, coded bytes and codec of each stream."""
    try:
        header = decoder.read_header(blob)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc
    return [
        {
            "name": t["name"],
            "layout": t["layout"],
            "shape": t["shape"],
            "dtype": t["dtype"],
            "bytes": sum(s["length"] for s in t["streams"].values()),
            "streams": {k: (s["codec"], s["length"]) for k, s in t["streams"].items()},
        }  # fmt: skip
        for t in header["tensors"]
    ]
