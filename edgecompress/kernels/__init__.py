"""Quantized matmul kernels (Triton), custom ops, QuantLinear and their ONNX translation.

Importing this package never imports triton (nor onnxscript): the kernel modules
(``w8a16``, ``w4a16``, ``w8a8``) are loaded on first use by the custom ops, or imported
directly.
"""

from edgecompress.kernels.ops import (
    reference_w4a16,
    reference_w8a8,
    reference_w8a16,
    triton_available,
    w4a16_linear,
    w8a8_linear,
    w8a16_linear,
)
from edgecompress.kernels.packing import (
    dequantize_int4,
    dequantize_int8,
    pack_int4,
    per_token_quantize_int8,
    quantize_int4,
    quantize_int8_per_channel,
    unpack_int4,
)
from edgecompress.kernels.quant_linear import SCHEMES, QuantLinear


def onnx_custom_translation_table() -> dict:
    """See :func:`edgecompress.kernels.onnx_translation.onnx_custom_translation_table`
    (imported lazily so this package works without onnx / onnxscript)."""
    from edgecompress.kernels import onnx_translation

    return onnx_translation.onnx_custom_translation_table()


__all__ = [
    "SCHEMES",
    "QuantLinear",
    "dequantize_int4",
    "dequantize_int8",
    "onnx_custom_translation_table",
    "pack_int4",
    "per_token_quantize_int8",
    "quantize_int4",
    "quantize_int8_per_channel",
    "reference_w4a16",
    "reference_w8a16",
    "reference_w8a8",
    "triton_available",
    "unpack_int4",
    "w4a16_linear",
    "w8a16_linear",
    "w8a8_linear",
]
