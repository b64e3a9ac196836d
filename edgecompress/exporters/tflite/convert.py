"""ONNX -> onnx2tf -> SavedModel -> tf.lite.TFLiteConverter. TensorFlow is imported here only.

onnx2tf turns 4-D NCHW inputs into NHWC (what TFLite kernels want); ``file_io`` reads the
layout, dtypes and int8 scale / zero point the written file really has.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from edgecompress.errors import ExportError
from edgecompress.iospec import IOSpec, TensorSpec

NHWC_PERM = (0, 2, 3, 1)


def onnx_to_saved_model(onnx_path: Path, saved_dir: Path) -> None:
    """Run onnx2tf (quietly) into ``saved_dir``; its errors become ExportError."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import onnx2tf

    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            onnx2tf.convert(
                input_onnx_file_path=str(onnx_path),
                output_folder_path=str(saved_dir),
                output_signaturedefs=True,
                copy_onnx_input_output_names_to_tflite=True,
                non_verbose=True,
                verbosity="error",
            )
    except BaseException as exc:  # onnx2tf calls sys.exit on some failures
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ExportError(
            f"tflite: onnx2tf could not convert {onnx_path.name}: {_reason(exc, sink.getvalue())}"
        ) from None
    if not (saved_dir / "saved_model.pb").exists():
        raise ExportError(f"tflite: onnx2tf wrote no SavedModel: {_reason(None, sink.getvalue())}")


def _reason(exc: BaseException | None, output: str) -> str:
    lines = [ln.strip() for ln in output.splitlines() if "error" in ln.lower() and ln.strip()]
    text = lines[-1] if lines else (f"{type(exc).__name__}: {exc}" if exc else "no output")
    return text[:400]


def convert(
    saved_dir: Path,
    dst: Path,
    mode: str,
    representative: Callable[[], Iterator[list[np.ndarray]]] | None = None,
    per_channel: bool = True,
    drop_metadata: bool = False,
) -> dict:
    """SavedModel -> ``dst`` (.tflite). mode: fp32 | fp16 | int8-dynamic | int8-full.

    ``per_channel=False``: one weight scale per tensor (int8 modes); TFLite stores a float32
    scale and an int64 zero point per channel for weights and biases, 24 B a channel.
    ``drop_metadata``: leave out the converter's CONVERSION_METADATA buffer."""
    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_dir))
    converter.exclude_conversion_metadata = drop_metadata
    details: dict = {"converter": f"tf.lite.TFLiteConverter (TF {tf.__version__})"}
    if mode != "fp32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode.startswith("int8"):
        converter._experimental_disable_per_channel = not per_channel
        details["weight_scales"] = "per-channel" if per_channel else "per-tensor"
    if mode == "fp16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8-full":
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        details.update(
            {
                "ops": "TFLITE_BUILTINS_INT8",
                "io": "int8",
                "representative_dataset": "recipe train split",
            }
        )
    try:
        dst.write_bytes(converter.convert())
    except Exception as exc:  # ConverterError and friends
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"tflite: {mode} conversion failed: {first[:400]}") from None
    return details


def file_io(path: Path, reference: IOSpec) -> tuple[IOSpec, dict[str, tuple[int, ...]]]:
    """The file's real IO spec (names from ``reference``) and the input permutations
    that turn the reference layout into the file's (e.g. NCHW -> NHWC)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    perms: dict[str, tuple[int, ...]] = {}
    inputs = []
    details = interp.get_input_details()
    for spec in reference.inputs:
        detail = next((d for d in details if spec.name in d["name"]), details[len(inputs)])
        shape, perm = _layout(spec, detail)
        if perm is not None:
            perms[spec.name] = perm
        inputs.append(_spec(spec.name, detail, shape))
    outputs = [
        _spec(spec.name, d, spec.shape)
        for spec, d in zip(reference.outputs, interp.get_output_details(), strict=False)
    ]
    return IOSpec(inputs, outputs), perms


def _layout(spec: TensorSpec, detail: dict) -> tuple[tuple, tuple[int, ...] | None]:
    file_shape = [int(d) for d in detail["shape_signature"]]
    if len(spec.shape) != 4:
        return spec.shape, None
    static = [d if isinstance(d, int) else -1 for d in spec.shape]
    if file_shape == static or file_shape[1:] == static[1:]:
        return spec.shape, None
    nhwc = [static[i] for i in NHWC_PERM]
    if file_shape[1:] != nhwc[1:]:
        raise ExportError(
            f"tflite: input {spec.name} has shape {file_shape}, expected "
            f"{static} (NCHW) or {nhwc} (NHWC)"
        )
    return tuple(spec.shape[i] for i in NHWC_PERM), NHWC_PERM


def _spec(name: str, detail: dict, shape) -> TensorSpec:
    dtype = np.dtype(detail["dtype"]).name
    scale, zero = detail["quantization"]
    if dtype in ("int8", "uint8") and scale:
        return TensorSpec(name, dtype, tuple(shape), float(scale), int(zero))
    return TensorSpec(name, dtype, tuple(shape))


def compact(path: Path, io: IOSpec) -> dict:
    """Shorten the file's tensor names in place; weights, quantization and ops stay as they are.

    The converter names tensors after the TF ops onnx2tf built ("model_5/tf.nn.relu/Relu;
    model_5/tf.math.add/Add;..."): ~1.3 KB on the digits CNN. Graph inputs and outputs take
    the IO spec's names, every other tensor ``t<index>``; buffers stay 16-byte aligned.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    raw = path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(raw, 0))
    if any(b.offset for b in model.buffers):  # > 2 GB layout: buffers live outside the table
        return {"names_compacted": 0}
    for k, graph in enumerate(model.subgraphs):
        fixed = _io_names(graph, io) if k == 0 else {}
        for i, tensor in enumerate(graph.tensors):
            tensor.name = fixed.get(i, f"t{i}").encode()
    model.buffers = [_AlignedBuffer(b.data) for b in model.buffers]
    builder = flatbuffers.Builder(len(raw) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    saved = len(raw) - path.stat().st_size
    return {"names_compacted": sum(len(g.tensors) for g in model.subgraphs), "bytes_saved": saved}


def _io_names(graph, io: IOSpec) -> dict[int, str]:
    """Graph input tensors by name containment ("serving_default_image:0"), outputs by order."""
    names: dict[int, str] = {}
    current = {i: (graph.tensors[i].name or b"").decode() for i in graph.inputs}
    for spec in io.inputs:
        match = next((i for i, n in current.items() if spec.name in n and i not in names), None)
        if match is not None:
            names[match] = spec.name
    for index, spec in zip(graph.outputs, io.outputs, strict=False):
        names.setdefault(int(index), spec.name)
    return names


class _AlignedBuffer:
    """A flatbuffer Buffer whose data keeps the 16-byte alignment the schema asks for."""

    def __init__(self, data):
        self.data = data

    def Pack(self, builder):  # noqa: N802 (flatbuffers object API)
        from ai_edge_litert import schema_py_generated as schema

        vector = None
        if self.data is not None and len(self.data):
            payload = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(payload), 16)
            builder.head -= len(payload)
            builder.Bytes[builder.head : builder.head + len(payload)] = payload
            vector = builder.EndVector(len(payload))
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        return schema.BufferEnd(builder)
