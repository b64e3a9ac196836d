"""Writing (and checked reading) of coded weights files: the container the standalone decoder
(templates/decoder.py) reads. Per tensor the writer picks the smallest of the layouts it fits
(raw; dense codebook + uint8 indices; sparse codebook + indices + run-length gaps) and, per
stream, the smallest of the allowed codecs."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field

import numpy as np

from edgecompress.errors import CompressError
from edgecompress.storage import codecs
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
    dtype: str
    extra: dict = field(default_factory=dict)


@dataclass
class CodedTensor:
    name: str
    dtype: str
    shape: list[int]
    layout: str  # raw | dense | sparse
    streams: dict[str, Stream]
    sha256: str
    shuffle: bool = False

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
    codec, coded, extra = codecs.best(raw, allowed)
    return Stream(codec, coded, len(raw), data.dtype.str, extra)


def _candidates(flat: np.ndarray, allowed) -> list[tuple[str, dict[str, Stream], bool]]:
    out = []
    size = flat.dtype.itemsize
    plain = bits_view(flat).view(np.uint8) if size > 1 else flat.view(np.uint8)
    out.append(("raw", {"values": _stream(plain, allowed)}, False))
    if size > 1:
        shuffled = plain.reshape(-1, size).T.reshape(-1)
        out.append(("raw", {"values": _stream(shuffled, allowed)}, True))
    bits = bits_view(flat)
    uniq, inverse = np.unique(bits, return_inverse=True)
    if uniq.size <= MAX_CODEBOOK and not (size == 1 and uniq.size > MAX_CODEBOOK // 2):
        book = uniq.view(flat.dtype).view(np.uint8)
        dense = {
            "codebook": _stream(book, allowed),
            "indices": _stream(inverse.astype(np.uint8), allowed),
        }
        out.append(("dense", dense, False))
        nonzero = np.flatnonzero(bits)
        if nonzero.size <= SPARSE_MAX_DENSITY * flat.size:
            nz_uniq, nz_inv = np.unique(bits[nonzero], return_inverse=True)
            sparse = {
                "codebook": _stream(nz_uniq.view(flat.dtype).view(np.uint8), allowed),
                "indices": _stream(nz_inv.astype(np.uint8), allowed),
                "gaps": _stream(gap_bytes(nonzero), allowed),
            }
            out.append(("sparse", sparse, False))
    return out


def code_tensor(name: str, array: np.ndarray, allowed=codecs.STDLIB_CODECS) -> CodedTensor:
    """The smallest coding of ``array`` over the layouts it fits and the ``allowed`` codecs."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    flat = array.reshape(-1)
    layout, streams, shuffle = min(
        _candidates(flat, tuple(allowed)), key=lambda c: sum(len(s.coded) for s in c[1].values())
    )
    digest = hashlib.sha256(array.tobytes()).hexdigest()
    return CodedTensor(name, array.dtype.str, list(array.shape), layout, streams, digest, shuffle)


def write(tensors: list[CodedTensor]) -> bytes:
    """The coded weights file holding ``tensors``."""
    entries, payload, offset = [], [], 0
    for t in tensors:
        infos = {}
        for key, s in t.streams.items():
            infos[key] = {
                "codec": s.codec.value, "offset": offset, "length": len(s.coded),
                "raw_length": s.raw_length, "dtype": s.dtype, "crc32": zlib.crc32(s.coded),
                **s.extra,
            }  # fmt: skip
            payload.append(s.coded)
            offset += len(s.coded)
        entry = {"name": t.name, "dtype": t.dtype, "shape": t.shape, "layout": t.layout}
        entries.append({**entry, "shuffle": t.shuffle, "streams": infos, "sha256": t.sha256})
    header = {"payload_bytes": offset, "tensors": entries}
    raw = zlib.compress(json.dumps(header, separators=(",", ":"), sort_keys=True).encode(), 9)
    preamble = decoder.PREAMBLE.pack(decoder.MAGIC, decoder.VERSION, len(raw), zlib.crc32(raw))
    return preamble + raw + b"".join(payload)


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
