"""Models the Lambda packaging tests build themselves (no dependency on the ONNX exporter)."""

from __future__ import annotations

import warnings
from pathlib import Path


def digits_int8_onnx(folder: Path) -> Path:
    """The trained digits CNN, exported to ONNX (opset 17) and dynamically quantized to int8.

    uint8 weights: onnxruntime 1.16 (the newest that runs on python3.11 / Amazon Linux 2) has
    no ConvInteger kernel for int8 weights."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    bundle = load_factory(
        "edgecompress.zoo:digits_cnn", "package://edgecompress.zoo/digits_cnn.pt", TaskSpec()
    )
    x = torch.from_numpy(bundle.example_inputs["image"])
    float_path, int8_path = folder / "digits.onnx", folder / "digits.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            bundle.module.eval(),
            (x,),
            str(float_path),
            dynamo=False,
            input_names=bundle.io.input_names,
            output_names=bundle.io.output_names,
            dynamic_axes=bundle.io.dynamic_axes(),
            opset_version=17,
        )
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QUInt8)
    return int8_path


def digits_bundle():
    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    return load_factory(
        "edgecompress.zoo:digits_cnn", "package://edgecompress.zoo/digits_cnn.pt", TaskSpec()
    )


def digits_torch_onnx(path: Path, dynamo: bool, opset: int = 18) -> Path:
    """The trained digits CNN through torch's dynamo (or TorchScript) exporter, batch dynamic."""
    import contextlib
    import io

    import torch

    bundle = digits_bundle()
    x = torch.from_numpy(bundle.example_inputs["image"])
    names = {"input_names": bundle.io.input_names, "output_names": bundle.io.output_names}
    if dynamo:
        from torch.export import Dim

        extra = {"dynamic_shapes": {"image": {0: Dim("batch")}}, "external_data": False}
    else:
        extra = {"dynamic_axes": bundle.io.dynamic_axes()}
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            bundle.module.eval(),
            (x,),
            str(path),
            dynamo=dynamo,
            opset_version=opset,
            **names,
            **extra,
        )
    return path


def ort_optimized(src: Path, dst: Path) -> Path:
    """onnxruntime's offline basic optimisation, as the ONNX exporter runs it: the saved model
    imports every domain onnxruntime 1.32 registers (ai.onnx.ml 5, com.microsoft ...)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(dst)
    ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
    return dst


def digits_qdq_int8(src: Path, dst: Path, samples: int = 128) -> Path:
    """Static int8 QDQ (QInt8 activations and per-channel weights), calibrated on digits."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    from edgecompress.data import load_digits

    x = load_digits().train.x[:samples]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"image": x[i : i + 16]} for i in range(0, len(x), 16)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    return dst


def tiny_int8_tflite(path: Path) -> Path:
    """A small Keras CNN trained on digits (NHWC), converted to a full-integer int8 TFLite
    model (int8 input and output, TFLITE_BUILTINS_INT8, representative dataset)."""
    import tensorflow as tf

    from edgecompress.data import load_digits

    data = load_digits()
    x = data.train.x.transpose(0, 2, 3, 1)
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.Sequential(
        [
            tf.keras.Input((8, 8, 1), name="image"),
            tf.keras.layers.Conv2D(8, 3, activation="relu"),
            tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10),
        ]
    )
    loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("adam", loss)
    model.fit(x, data.train.labels, epochs=8, batch_size=32, verbose=0)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([x[i : i + 1]] for i in range(128))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())
    return path
