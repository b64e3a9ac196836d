"""torch -> torch.export -> LiteRT Torch (litert-torch) -> .tflite, with no TensorFlow.

litert-torch 0.10 lowers through JAX; with torch 2.13 it refuses symbolic batch and sequence
sizes (BERT's ``position_ids[:, :seq]`` slice and the attention reshapes fail to trace), so
files are written with static shapes: batch 1 and, for text models, a fixed sequence length
(texts are padded to it with attention mask 0, which leaves pooled embeddings and logits as
they were). ``runtimes.RowRunner`` feeds such a file one padded row at a time. Token ids become
int32 in the file (litert-torch downcasts 64-bit tensors).

Static int8 (int8 weights and activations, ranges from a representative set; the file keeps
float IO) is PyTorch's PT2E flow (``prepare_pt2e`` / calibrate / ``convert_pt2e``) with
litert-torch's ``PT2EQuantizer``, after the outlier-channel rewrites of outliers.py
(SmoothQuant, output-channel split) on the exported graph; ai-edge-quantizer then makes the
embedding tables PT2E leaves float int8, and ``op_precision`` lists which ops of the file run
int8 (the manifest's ``ops_int8`` / ``ops_float``). Dynamic-range int8 and fp16 are
ai-edge-quantizer recipes on the fp32 file: PT2E's dynamic mode writes BERT embedding
lookups with a non-zero zero point that ai-edge-litert 2.3 refuses to run
("embedding_lookup.cc:73 ... zero_point == 0 was not true")."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from edgecompress.errors import ExportError
from edgecompress.exporters.tflite.outliers import OutlierOptions, rewrite_outliers
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import ModelBundle


def static_shapes(bundle: ModelBundle, sequence_length: int) -> dict[str, tuple[int, ...]]:
    """The file's input shapes: batch 1, text inputs padded to ``sequence_length``."""
    shapes = {}
    for spec in bundle.io.inputs:
        shape = [1, *bundle.example_inputs[spec.name].shape[1:]]
        if bundle.is_text and len(shape) == 2:
            shape[1] = sequence_length
        shapes[spec.name] = tuple(shape)
    return shapes


def torch_args(feeds: dict[str, np.ndarray], names: list[str]) -> tuple:
    import torch

    return tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in names)


def convert_module(
    module,
    args: tuple,
    dst: Path,
    mode: str,
    calibration: Iterable[tuple] | None = None,
    outliers: OutlierOptions | None = None,
) -> dict:
    """Write ``module`` traced on ``args`` to ``dst``. mode: fp32 | fp16 | int8-dynamic |
    int8-full (``calibration``: the representative args, one tuple per sample; ``outliers``:
    the int8-full rewrites for outlier channels, see outliers.py)."""
    import torch

    details: dict = {"converter": f"litert-torch {_version()}", "export": "torch.export"}
    details.update(guard_llvm())
    module = module.eval()
    quant_config = None
    try:
        with _quiet(), torch.no_grad():
            if mode == "int8-full":
                module, quant_config, pt2e = _pt2e(module, args, calibration, outliers)
                details.update(pt2e)
            post = mode in POST_RECIPES
            target = dst.with_suffix(".f32.tflite") if post else dst
            _convert(module, args, quant_config).export(str(target))
            if mode == "int8-full":  # PT2E leaves embedding tables float
                details.update(quantize_embeddings(target))
            if post:  # ai-edge-quantizer prints its summary to stdout
                details.update(post_quantize(target, dst, mode))
                target.unlink()
    except ExportError:
        raise
    except Exception as exc:  # litert-torch / torch.export / JAX lowering errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(
            f"tflite (litert-torch): {mode} conversion failed: {type(exc).__name__}: {first[:400]}"
        ) from None
    return details


def _convert(module, args, quant_config):
    import litert_torch

    return litert_torch.convert(module, args, quant_config=quant_config)


def _pt2e(module, args, calibration, outliers: OutlierOptions | None) -> tuple:
    """Outlier rewrites, then prepare_pt2e / calibrate / convert_pt2e with litert-torch's
    symmetric quantizer."""
    import torch
    from litert_torch.quantize import pt2e_quantizer as pq
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    config = pq.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    quantizer = pq.PT2EQuantizer().set_global(config)
    graph = torch.export.export(module, args, strict=False).module()
    samples = [args] if calibration is None else list(calibration)
    options = outliers or OutlierOptions()
    rewrites = rewrite_outliers(graph, samples, options.smoothquant_alpha, options.split_ratio)
    prepared = quantize_pt2e.prepare_pt2e(graph, quantizer)
    for sample in samples:
        prepared(*sample)
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    details = {
        "quantization": "PT2E static int8 (prepare_pt2e / convert_pt2e)",
        "weight_scales": "per-channel",
        "activations": "int8, calibrated",
        "calibration_samples": len(samples),
        "io": "float (quantized inside the file)",
        **rewrites,
    }
    return converted, QuantConfig(pt2e_quantizer=quantizer), details


POST_RECIPES = {
    "fp16": "ai-edge-quantizer float_casting (weights fp16, compute float32)",
    "int8-dynamic": "ai-edge-quantizer dynamic_wi8_afp32 (per-channel int8 weights, "
    "activations quantized per call)",
}


def post_quantize(src: Path, dst: Path, mode: str) -> dict:
    """fp32 .tflite -> ``mode`` with an ai-edge-quantizer recipe."""
    from ai_edge_quantizer import quantizer, recipe

    job = quantizer.Quantizer(str(src))
    job.load_quantization_recipe(_fp16_recipe() if mode == "fp16" else recipe.dynamic_wi8_afp32())
    dst.write_bytes(bytes(job.quantize().quantized_model))
    return {"quantization": POST_RECIPES[mode]}


def quantize_embeddings(path: Path) -> dict:
    """Float EMBEDDING_LOOKUP tables in ``path`` -> int8 (symmetric per row, zero point 0,
    which ai-edge-litert runs), in place, with ai-edge-quantizer; {} when there are none."""
    from ai_edge_quantizer import qtyping, quantizer, recipe_manager

    if not op_precision(path)["ops_float"].get("EMBEDDING_LOOKUP"):
        return {}
    manager = recipe_manager.RecipeManager()
    manager.add_quantization_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.EMBEDDING_LOOKUP,
        op_config=qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=8, symmetric=True, granularity=qtyping.QuantGranularity.CHANNELWISE
            ),
            compute_precision=qtyping.ComputePrecision.INTEGER,
            explicit_dequantize=False,
        ),
        algorithm_key="min_max_uniform_quantize",
    )
    job = quantizer.Quantizer(str(path))
    job.load_quantization_recipe(manager.get_quantization_recipe())
    path.write_bytes(bytes(job.quantize().quantized_model))
    return {"embeddings": "int8 per row (ai-edge-quantizer, EMBEDDING_LOOKUP weight-only)"}


def _fp16_recipe():
    from ai_edge_quantizer import qtyping, recipe_manager

    manager = recipe_manager.RecipeManager()
    manager.add_quantization_config(
        regex=".*",
        operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
        op_config=qtyping.OpQuantizationConfig(
            weight_tensor_config=qtyping.TensorQuantizationConfig(
                num_bits=16, dtype=qtyping.TensorDataType.FLOAT
            ),
            compute_precision=qtyping.ComputePrecision.FLOAT,
            explicit_dequantize=True,
        ),
        algorithm_key="float_casting",
    )
    return manager.get_quantization_recipe()


def file_io(path: Path, reference: IOSpec) -> IOSpec:
    """The file's real IO spec: reference names in order, the file's dtypes and shapes."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))

    def specs(refs, details):
        return [
            TensorSpec(ref.name, np.dtype(d["dtype"]).name, tuple(int(x) for x in d["shape"]))
            for ref, d in zip(refs, details, strict=False)
        ]

    return IOSpec(
        specs(reference.inputs, interp.get_input_details()),
        specs(reference.outputs, interp.get_output_details()),
    )


def op_precision(path: Path) -> dict:
    """The file's ops by name: those computing on int8 tensors and those in float (QUANTIZE /
    DEQUANTIZE, the conversions between them, counted apart), so "full int8" is checkable."""
    from collections import Counter

    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    dtypes = {t["index"]: np.dtype(t["dtype"]).name for t in interp.get_tensor_details()}
    kinds: dict[str, Counter] = {"int8": Counter(), "float": Counter(), "convert": Counter()}
    for op in interp._get_ops_details():  # the only op listing ai-edge-litert offers
        name = op["op_name"]
        seen = {dtypes.get(i) for i in [*op["inputs"], *op["outputs"]] if i >= 0}
        kind = "convert" if name in ("QUANTIZE", "DEQUANTIZE") else "int8"
        kinds[kind if kind == "convert" or "int8" in seen else "float"][name] += 1
    return {f"ops_{k}": dict(sorted(v.items())) for k, v in kinds.items()}


def guard_llvm() -> dict:
    """With TensorFlow already loaded (the onnx2tf backend ran in this process), importing
    litert-torch pulls in Triton and the process aborts ("LLVM ERROR: inconsistency in
    registered CommandLine options"): Triton is blocked for the rest of the process then
    (torch works without it; edgecompress's Triton kernels fall back to torch)."""
    import sys

    if "tensorflow" not in sys.modules or "triton" in sys.modules:
        return {}
    sys.modules["triton"] = None  # import triton -> ImportError instead of an abort
    return {"triton": "blocked: TensorFlow is loaded in this process (LLVM options clash)"}


@contextlib.contextmanager
def _quiet():
    """litert-torch prints a progress tree and JAX / absl log lines: keep them out of stdout."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        yield


def _version() -> str:
    from importlib.metadata import version

    return version("litert-torch")
