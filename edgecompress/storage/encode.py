"""ONNX model -> (skeleton without its large initializers, coded weights file), and back.

The skeleton is the ModelProto with every main-graph initializer of at least ``min_elements``
elements taken out; the decoder (templates/decoder.py) appends them again as raw tensors, so
the rebuilt model runs in ``onnxruntime.InferenceSession(bytes)`` without the onnx package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgecompress.errors import ExportError
from edgecompress.storage import codecs
from edgecompress.storage import format as fmt
from edgecompress.storage.templates import decoder

SKELETON_FILE = "model.skeleton.onnx"
WEIGHTS_FILE = "model.ecw"
MIN_ELEMENTS = 16


@dataclass
class Encoded:
    skeleton: bytes
    weights: bytes
    tensors: list[fmt.CodedTensor]
    onnx_bytes: int  # the model file as serialized, with every initializer inside

    def summary(self) -> dict:
        return {
            "onnx_bytes": self.onnx_bytes,
            "skeleton_bytes": len(self.skeleton),
            "weights_bytes": len(self.weights),
            "tensors": len(self.tensors),
            "layouts": {k: sum(t.layout == k for t in self.tensors) for k in decoder.LAYOUTS},
        }


def split_model(model, min_elements: int = MIN_ELEMENTS):
    """(skeleton ModelProto, {name: numpy array}) of the initializers taken out."""
    from onnx import numpy_helper

    kept, taken = [], {}
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if (
            array.size >= min_elements
            and array.dtype.name in decoder.ONNX_TYPES
            and not init.segment.ByteSize()
        ):
            taken[init.name] = array
        else:
            kept.append(init)
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return model, taken


def encode_onnx(
    path: Path, allowed=codecs.STDLIB_CODECS, min_elements: int = MIN_ELEMENTS
) -> Encoded:
    """Skeleton and coded weights of the ONNX model at ``path`` (external data loaded)."""
    import onnx

    path = Path(path)
    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise ExportError(f"storage: cannot read ONNX model {path}: {exc}") from exc
    size = model.ByteSize()
    skeleton, tensors = split_model(model, min_elements)
    coded = [fmt.code_tensor(n, a, allowed) for n, a in tensors.items()]
    return Encoded(skeleton.SerializeToString(), fmt.write(coded), coded, size)


def write_encoded(encoded: Encoded, folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    skeleton, weights = folder / SKELETON_FILE, folder / WEIGHTS_FILE
    skeleton.write_bytes(encoded.skeleton)
    weights.write_bytes(encoded.weights)
    return skeleton, weights


def rebuild(skeleton: bytes, weights: bytes) -> bytes:
    """ONNX model bytes from a skeleton and coded weights (the decoder's own code); StorageError
    when the weights file is corrupt or truncated."""
    try:
        return decoder.load_onnx_bytes(skeleton, weights)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise fmt.StorageError(str(exc)) from exc


def codecs_used(weights: bytes) -> set[str]:
    return {c for t in fmt.describe(weights) for c, _ in t["streams"].values()}


def store_compressed(stage: Path, spec: dict) -> dict:
    """Replace the staged model.onnx of a deploy bundle by skeleton + coded weights +
    decoder.py; updates ``spec`` (the io_spec.json dict) and returns its "storage" entry."""
    import shutil

    model = stage / spec["model_file"]
    if spec.get("runtime") != "onnxruntime" or model.suffix != ".onnx":
        raise ExportError("storage: compressed needs an ONNX model (the zip serves a TFLite file)")
    encoded = encode_onnx(model)
    write_encoded(encoded, stage)
    model.unlink()
    shutil.copyfile(Path(decoder.__file__), stage / "decoder.py")
    entry = {
        "format": f"ecw{decoder.VERSION}", "skeleton": SKELETON_FILE, "weights": WEIGHTS_FILE,
        "codecs": sorted(codecs_used(encoded.weights)), **encoded.summary(),
    }  # fmt: skip
    spec.update(model_file=WEIGHTS_FILE, storage=entry)
    return entry
