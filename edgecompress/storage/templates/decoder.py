"""Decoder of edgecompress coded weights (.ecw), copied into deploy zips beside handler.py.

Needs numpy and the standard library only (zstandard too, if a stream was coded with it).
A file (format version 2) is: magic b"ECW1", format version (u8), header length (u32), header
CRC32 (u32), a binary header (raw DEFLATE), then the coded streams back to back. The header is
a varint tensor count, then per tensor: name (varint length + UTF-8), dtype code (u8), rank
and dims (varints), flags (u8: layout in bits 0-2, bit 3 byte-plane shuffle, bit 4 float32
values stored as float16), per stream of its layout a codec code (u8), the coded length and
the decoded length (varints), and the CRC32 of the tensor's decoded bytes (u32).

Layouts: "raw" (the little-endian bytes, byte-planes shuffled for multi-byte types), "dense" (a
codebook and one uint8 index per element), "sparse" (a codebook of non-zero values, one index
per non-zero, and the run-length gaps between non-zero positions: a gap byte g in 1..255 steps
g positions, 0 steps 255 and places nothing), "rows" / "columns" (a codebook of L values per
row of [shape[0], -1] or per column of [-1, shape[-1]], then one uint8 index per element, book
by book: storage/rowwise.py). Every stream is bytes; a codebook or raw tensor
flagged float16 holds float32 values that float16 represents exactly (decoded bit for bit).
"zlib" and "huffman" streams are raw DEFLATE (no zlib header or Adler-32): the tensor's CRC32
checks the decoded bytes, so a corrupt or truncated file raises ValueError naming the tensor,
never returns wrong weights.

``load_onnx_bytes(skeleton, weights)`` appends the decoded initializers to an ONNX model whose
large initializers were taken out (protobuf merges a repeated ``graph`` field), so that
``onnxruntime.InferenceSession(bytes)`` runs it without the onnx package.
"""

import bz2
import lzma
import struct
import time
import zlib

import numpy as np

MAGIC = b"ECW1"
VERSION = 2
PREAMBLE = struct.Struct("<4sBII")  # magic, version, header length, header crc32
CODECS = ("store", "zlib", "huffman", "lzma", "bz2", "zstd")
DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32",
          "uint32", "int64", "uint64", "bool")  # fmt: skip
LAYOUTS = {"raw": ("values",), "dense": ("codebook", "indices"),
           "sparse": ("codebook", "indices", "gaps"), "rows": ("codebook", "indices"),
           "columns": ("codebook", "indices")}  # fmt: skip
SHUFFLE, HALF = 8, 16  # flag bits above the layout code
ONNX_TYPES = {
    "float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7,
    "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13,
}  # fmt: skip
LAST = {}  # timings of the last decode (the handler reports them)


def lzma_dict_size(n):
    """LZMA2 dictionary of a stream of ``n`` bytes (the writer and the reader agree on it)."""
    return min(1 << 26, max(4096, 1 << max(0, int(n) - 1).bit_length()))


def _decompress(codec, data, raw_length):
    if codec == "store":
        return data
    if codec in ("zlib", "huffman"):  # "huffman": DEFLATE with Huffman coding only (no LZ77)
        d = zlib.decompressobj(-15)
        out = d.decompress(data, raw_length + 1) + d.flush()
        if not d.eof:
            raise ValueError("DEFLATE stream truncated")
        return out
    if codec == "lzma":
        lzma2 = {"id": lzma.FILTER_LZMA2, "dict_size": lzma_dict_size(raw_length)}
        return lzma.decompress(data, format=lzma.FORMAT_RAW, filters=[lzma2])
    if codec == "bz2":
        return bz2.decompress(data)
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data, max_output_size=raw_length)
    raise ValueError(f"unknown codec {codec!r}")


class _Reader:
    def __init__(self, data):
        self.data, self.at = data, 0

    def byte(self):
        if self.at >= len(self.data):
            raise ValueError("coded weights: header ends early")
        self.at += 1
        return self.data[self.at - 1]

    def varint(self):
        n, shift = 0, 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return n

    def take(self, n):
        out = self.data[self.at : self.at + n]
        if len(out) != n:
            raise ValueError("coded weights: header ends early")
        self.at += n
        return out


def _pick(table, code, what):
    if code >= len(table):
        raise ValueError(f"coded weights: unknown {what} code {code}")
    return table[code]


def _tensor_entry(r, offset):
    name = r.take(r.varint()).decode("utf-8")
    dtype = _pick(DTYPES, r.byte(), "dtype")
    shape = [r.varint() for _ in range(r.varint())]
    flags = r.byte()
    layout = _pick(list(LAYOUTS), flags & 7, "layout")
    streams = {}
    for key in LAYOUTS[layout]:
        codec = _pick(CODECS, r.byte(), "codec")
        length, raw_length = r.varint(), r.varint()
        streams[key] = {"codec": codec, "offset": offset, "length": length,
                        "raw_length": raw_length}  # fmt: skip
        offset += length
    crc = struct.unpack("<I", r.take(4))[0]
    entry = {"name": name, "dtype": dtype, "shape": shape, "layout": layout, "crc32": crc,
             "shuffle": bool(flags & SHUFFLE), "half": bool(flags & HALF)}  # fmt: skip
    return {**entry, "streams": streams}, offset


def read_header(blob):
    """The header of a coded weights file (bytes) as a dict, checked; ValueError when it is
    not one."""
    if len(blob) < PREAMBLE.size:
        raise ValueError(f"coded weights: {len(blob)} bytes is too short to be a weights file")
    magic, version, size, crc = PREAMBLE.unpack_from(blob)
    if magic != MAGIC:
        raise ValueError(f"coded weights: bad magic {magic!r} (expected {MAGIC!r})")
    if version != VERSION:
        raise ValueError(f"coded weights: format version {version}, this decoder reads {VERSION}")
    raw = blob[PREAMBLE.size : PREAMBLE.size + size]
    if len(raw) != size or zlib.crc32(raw) != crc:
        raise ValueError("coded weights: header truncated or corrupt (CRC32 mismatch)")
    r, offset, tensors = _Reader(zlib.decompress(raw, -15)), 0, []
    for _ in range(r.varint()):
        entry, offset = _tensor_entry(r, offset)
        tensors.append(entry)
    header = {"tensors": tensors, "payload_bytes": offset, "payload_start": PREAMBLE.size + size}
    if len(blob) != header["payload_start"] + offset:
        raise ValueError(
            f"coded weights: {len(blob)} bytes, the header promises "
            f"{header['payload_start'] + offset} (truncated or padded file)"
        )
    return header


def _stream(blob, start, tensor, key):
    info = tensor["streams"][key]
    data = blob[start + info["offset"] : start + info["offset"] + info["length"]]
    try:
        raw = _decompress(info["codec"], data, info["raw_length"])
    except Exception as exc:  # noqa: BLE001 (every codec library raises its own type)
        raise ValueError(f"coded weights: tensor {tensor['name']!r}: stream {key!r} is corrupt "
                         f"({exc})") from None  # fmt: skip
    if len(raw) != info["raw_length"]:
        raise ValueError(f"coded weights: tensor {tensor['name']!r}: stream {key!r} is corrupt "
                         f"(wrong size)")  # fmt: skip
    return np.frombuffer(raw, np.uint8)


def gap_positions(gaps):
    """Positions of the non-zeros from run-length gap bytes (0 = step 255, no element)."""
    steps = np.where(gaps == 0, 255, gaps.astype(np.int64))
    return (np.cumsum(steps) - 1)[gaps != 0]


def unshuffle(raw, dtype):
    """Undo the byte-plane shuffle of a raw stream (plane k holds byte k of every element)."""
    size = np.dtype(dtype).itemsize
    return np.ascontiguousarray(raw.reshape(size, -1).T).view(dtype).reshape(-1)


def _values(raw, t, dtype):
    """Raw stream bytes -> elements of ``dtype`` (float16-stored float32 widened exactly)."""
    stored = np.dtype("<f2") if t["half"] else dtype
    if raw.size % stored.itemsize:
        raise ValueError(f"coded weights: tensor {t['name']!r}: stream size is not whole values")
    values = unshuffle(raw, stored) if t["shuffle"] else raw.view(stored)
    return values.astype(dtype) if t["half"] else values


def _lookup(codebook, indices):
    """``codebook[indices]``; one-byte values through a 256-byte table (``bytes.translate``:
    ~5x faster than numpy's fancy indexing, which first widens every index to 8 bytes)."""
    if codebook.dtype.itemsize != 1 or codebook.size > 256:
        return codebook[indices]
    table = np.zeros(256, np.uint8)
    table[: codebook.size] = codebook.view(np.uint8)
    return np.frombuffer(indices.tobytes().translate(table.tobytes()), codebook.dtype)


def _per_book(codebook, indices, t, count):
    """ "rows" / "columns": a codebook of L values per row of [shape[0], -1] (per column of
    [-1, shape[-1]]), then the uint8 indices of each row (column) back to back."""
    shape = t["shape"]
    books = shape[0] if t["layout"] == "rows" else (shape[-1] if shape else 0)
    if len(shape) < 2 or not books or codebook.size % books or indices.size != count:
        raise ValueError(f"coded weights: tensor {t['name']!r}: codebooks do not fit its shape")
    levels = codebook.size // books
    if indices.size and int(indices.max()) >= levels:
        raise ValueError(f"coded weights: tensor {t['name']!r}: index past the codebook")
    books_2d, indices_2d = codebook.reshape(books, levels), indices.reshape(books, -1)
    if codebook.dtype.itemsize == 1 and books <= 4096:  # few long books: one table each
        x = np.stack([_lookup(books_2d[b], indices_2d[b]) for b in range(books)])
    else:
        x = np.take_along_axis(books_2d, indices_2d, 1)
    return (x if t["layout"] == "rows" else np.ascontiguousarray(x.T)).reshape(-1)


def _tensor(blob, start, t):
    dtype, count = np.dtype(t["dtype"]).newbyteorder("<"), int(np.prod(t["shape"], dtype=np.int64))
    if t["layout"] == "raw":
        flat = _values(_stream(blob, start, t, "values"), t, dtype)
    else:
        codebook = _values(_stream(blob, start, t, "codebook"), t, dtype)
        indices = _stream(blob, start, t, "indices")
        if indices.size and int(indices.max()) >= codebook.size:
            raise ValueError(f"coded weights: tensor {t['name']!r}: index past the codebook")
        if t["layout"] in ("rows", "columns"):
            flat = _per_book(codebook, indices, t, count)
        elif t["layout"] == "dense":
            flat = _lookup(codebook, indices)
        else:
            positions = gap_positions(_stream(blob, start, t, "gaps"))
            if positions.size != indices.size or (positions.size and positions[-1] >= count):
                raise ValueError(f"coded weights: tensor {t['name']!r}: gaps do not fit its shape")
            flat = np.zeros(count, dtype)
            flat[positions] = codebook[indices]
    if flat.size != count:
        raise ValueError(f"coded weights: tensor {t['name']!r}: {flat.size} values, not {count}")
    array = flat.reshape(t["shape"])
    if zlib.crc32(_bytes_view(array)) != t["crc32"]:
        raise ValueError(f"coded weights: tensor {t['name']!r}: CRC32 mismatch (corrupt file)")
    return array


def decode(blob):
    """{name: numpy array} of every tensor in a coded weights file (bytes)."""
    t0 = time.perf_counter()
    header = read_header(blob)
    out = {t["name"]: _tensor(blob, header["payload_start"], t) for t in header["tensors"]}
    LAST["decode_ms"] = (time.perf_counter() - t0) * 1e3
    return out


def _bytes_view(array):
    """The little-endian bytes of a C-contiguous array, without a copy where possible."""
    array = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False))
    return memoryview(array.reshape(-1)).cast("B") if array.size else b""


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, payload):
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _tensor_parts(name, array):
    """A serialized onnx TensorProto (dims, data_type, name, raw_data) for ``array`` as
    (bytes before the data, the data as a byte view): joined once, never copied piecewise."""
    kind = ONNX_TYPES.get(array.dtype.name)
    if kind is None:
        raise ValueError(f"coded weights: tensor {name!r}: dtype {array.dtype} has no ONNX type")
    dims = b"".join(_varint(1 << 3) + _varint(int(d)) for d in array.shape)
    data = _bytes_view(array)
    head = dims + _varint(2 << 3) + _varint(kind) + _field(8, name.encode())
    return head + _varint(9 << 3 | 2) + _varint(len(data)), data


def load_onnx_bytes(skeleton, weights):
    """ONNX model bytes: the skeleton plus the decoded initializers (GraphProto field 5),
    appended as a second ``graph`` field (ModelProto field 7) that protobuf merges."""
    tensors = decode(weights)
    t0 = time.perf_counter()
    parts, size = [], 0
    for name, array in tensors.items():
        head, data = _tensor_parts(name, array)
        field = _varint(5 << 3 | 2) + _varint(len(head) + len(data))
        parts += [field, head, data]
        size += len(field) + len(head) + len(data)
    model = b"".join([skeleton, _varint(7 << 3 | 2), _varint(size), *parts])
    LAST["assemble_ms"] = (time.perf_counter() - t0) * 1e3
    return model


def load_files(skeleton_path, weights_path):
    """ONNX model bytes from a skeleton file and a coded weights file."""
    with open(skeleton_path, "rb") as fh:
        skeleton = fh.read()
    with open(weights_path, "rb") as fh:
        weights = fh.read()
    return load_onnx_bytes(skeleton, weights)
