"""Quantized matmul kernels (Triton), custom ops, QuantLinear and their ONNX translation.

A lazy namespace (PEP 562, as Scientific Python's SPEC 1 ``lazy_loader``): importing this
package imports nothing heavy, so ``from edgecompress import kernels`` costs nothing at the
top of a module. The first access to a name below (``kernels.QuantLinear``,
``kernels.packing``, ``from edgecompress.kernels import pack_int4``) imports the submodule
that defines it, and with it torch. triton (and onnxscript) are imported later still: the
kernel modules (``w8a16``, ``w4a16``, ``w8a8``) are loaded on first use by the custom ops, or
imported directly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgecompress.kernels import ops as ops
    from edgecompress.kernels import packing as packing
    from edgecompress.kernels import quant_linear as quant_linear
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

# public name -> the module defining it (imported on first access)
_ATTRIBUTES = {
    "edgecompress.kernels.ops": (
        "reference_w4a16",
        "reference_w8a8",
        "reference_w8a16",
        "triton_available",
        "w4a16_linear",
        "w8a8_linear",
        "w8a16_linear",
    ),
    "edgecompress.kernels.packing": (
        "dequantize_int4",
        "dequantize_int8",
        "pack_int4",
        "per_token_quantize_int8",
        "quantize_int4",
        "quantize_int8_per_channel",
        "unpack_int4",
    ),
    "edgecompress.kernels.quant_linear": ("SCHEMES", "QuantLinear"),
}
_LAZY = {name: module for module, names in _ATTRIBUTES.items() for name in names}
_SUBMODULES = (
    "edgecompress.kernels.ops",
    "edgecompress.kernels.packing",
    "edgecompress.kernels.quant_linear",
    "edgecompress.kernels.onnx_translation",
    "edgecompress.kernels.w4a16",
    "edgecompress.kernels.w8a8",
    "edgecompress.kernels.w8a16",
)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    elif f"{__name__}.{name}" in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
