"""Decoder of edgecompress coded weights (.ecw), copied into deploy zips beside handler.py.

Needs numpy and the standard library only (zstandard too, if a stream was coded with it).
A file is: magic b"ECW1", format version (u16), header length (u32), header CRC32 (u32), a JSON
header (zlib-compressed unless it starts with "{"), then the coded streams. Each tensor is
"raw" (its little-endian bytes, byte-planes shuffled for multi-byte types), "dense" (a codebook
and one uint8 index per element) or "sparse" (a codebook of non-zero values, one index per non-
zero, and the run-length gaps between non-zero positions: a gap byte g in 1..255 steps g
positions, 0 steps 255 and places nothing). Every stream carries the CRC32 of its coded bytes
and every tensor the SHA-256 of its decoded bytes: a corrupt or truncated file raises
ValueError naming the tensor, never returns wrong weights.

``load_onnx_bytes(skeleton, weights)`` appends the decoded initializers to an ONNX model whose
large initializers were taken out (protobuf merges a repeated ``graph`` field), so that
``onnxruntime.InferenceSession(bytes)`` runs it without the onnx package.
"""

import bz2
import hashlib
import json
import lzma
import struct
import time
import zlib

import numpy as np

MAGIC = b"ECW1"
VERSION = 1
PREAMBLE = struct.Struct("<4sHII")  # magic, version, header length, header crc32
ONNX_TYPES = {
    "float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7,
    "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13,
}  # fmt: skip
LAST = {}  # timings of the last decode (the handler reports them)


def _decompress(codec, data, info):
    if codec == "store":
        return data
    if codec in ("zlib", "huffman"):  # "huffman": DEFLATE with Huffman coding only (no LZ77)
        return zlib.decompress(data)
    if codec == "lzma":
        lzma2 = {"id": lzma.FILTER_LZMA2, "dict_size": int(info.get("dict_size", 1 << 20))}
        return lzma.decompress(data, format=lzma.FORMAT_RAW, filters=[lzma2])
    if codec == "bz2":
        return bz2.decompress(data)
    if codec == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompress(data)
    raise ValueError(f"unknown codec {codec!r}")


def read_header(blob):
    """The JSON header of a coded weights file (bytes), checked; ValueError when it is not one."""
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
    header = json.loads((raw if raw[:1] == b"{" else zlib.decompress(raw)).decode("utf-8"))
    header["payload_start"] = PREAMBLE.size + size
    if len(blob) != header["payload_start"] + header["payload_bytes"]:
        raise ValueError(
            f"coded weights: {len(blob)} bytes, the header promises "
            f"{header['payload_start'] + header['payload_bytes']} (truncated or padded file)"
        )
    return header


def _stream(blob, start, tensor, key):
    info = tensor["streams"][key]
    data = blob[start + info["offset"] : start + info["offset"] + info["length"]]
    if len(data) != info["length"] or zlib.crc32(data) != info["crc32"]:
        raise ValueError(f"coded weights: tensor {tensor['name']!r}: stream {key!r} is corrupt")
    try:
        raw = _decompress(info["codec"], data, info)
    except Exception as exc:  # noqa: BLE001 (every codec library raises its own type)
        raise ValueError(f"coded weights: tensor {tensor['name']!r}: {key!r}: {exc}") from None
    if len(raw) != info["raw_length"]:
        raise ValueError(f"coded weights: tensor {tensor['name']!r}: stream {key!r} has wrong size")
    return np.frombuffer(raw, dtype=info["dtype"])


def gap_positions(gaps):
    """Positions of the non-zeros from run-length gap bytes (0 = step 255, no element)."""
    steps = np.where(gaps == 0, 255, gaps.astype(np.int64))
    return (np.cumsum(steps) - 1)[gaps != 0]


def unshuffle(raw, dtype):
    """Undo the byte-plane shuffle of a raw stream (plane k holds byte k of every element)."""
    size = np.dtype(dtype).itemsize
    return np.ascontiguousarray(raw.reshape(size, -1).T).view(dtype).reshape(-1)


def _tensor(blob, start, t):
    dtype, count = np.dtype(t["dtype"]), int(np.prod(t["shape"], dtype=np.int64))
    if t["layout"] == "raw":
        values = _stream(blob, start, t, "values")
        flat = unshuffle(values, dtype) if t.get("shuffle") else values.view(dtype)
    else:
        codebook = _stream(blob, start, t, "codebook").view(dtype)
        indices = _stream(blob, start, t, "indices")
        if indices.size and int(indices.max()) >= codebook.size:
            raise ValueError(f"coded weights: tensor {t['name']!r}: index past the codebook")
        if t["layout"] == "dense":
            flat = codebook[indices]
        else:
            positions = gap_positions(_stream(blob, start, t, "gaps"))
            if positions.size != indices.size or (positions.size and positions[-1] >= count):
                raise ValueError(f"coded weights: tensor {t['name']!r}: gaps do not fit its shape")
            flat = np.zeros(count, dtype)
            flat[positions] = codebook[indices]
    if flat.size != count:
        raise ValueError(f"coded weights: tensor {t['name']!r}: {flat.size} values, not {count}")
    array = flat.reshape(t["shape"])
    if hashlib.sha256(array.tobytes()).hexdigest() != t["sha256"]:
        raise ValueError(f"coded weights: tensor {t['name']!r}: SHA-256 mismatch (corrupt file)")
    return array


def decode(blob):
    """{name: numpy array} of every tensor in a coded weights file (bytes)."""
    t0 = time.perf_counter()
    header = read_header(blob)
    out = {t["name"]: _tensor(blob, header["payload_start"], t) for t in header["tensors"]}
    LAST["decode_ms"] = (time.perf_counter() - t0) * 1e3
    return out


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, payload):
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def onnx_tensor(name, array):
    """A serialized onnx TensorProto (dims, data_type, name, raw_data) for ``array``."""
    array = np.ascontiguousarray(array)
    kind = ONNX_TYPES.get(array.dtype.name)
    if kind is None:
        raise ValueError(f"coded weights: tensor {name!r}: dtype {array.dtype} has no ONNX type")
    dims = b"".join(_varint(1 << 3) + _varint(int(d)) for d in array.shape)
    data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    return dims + _varint(2 << 3) + _varint(kind) + _field(8, name.encode()) + _field(9, data)


def load_onnx_bytes(skeleton, weights):
    """ONNX model bytes: the skeleton plus the decoded initializers (GraphProto field 5),
    appended as a second ``graph`` field (ModelProto field 7) that protobuf merges."""
    tensors = decode(weights)
    t0 = time.perf_counter()
    graph = b"".join(_field(5, onnx_tensor(n, a)) for n, a in tensors.items())
    model = skeleton + _field(7, graph)
    LAST["assemble_ms"] = (time.perf_counter() - t0) * 1e3
    return model


def load_files(skeleton_path, weights_path):
    """ONNX model bytes from a skeleton file and a coded weights file."""
    with open(skeleton_path, "rb") as fh:
        skeleton = fh.read()
    with open(weights_path, "rb") as fh:
        weights = fh.read()
    return load_onnx_bytes(skeleton, weights)
