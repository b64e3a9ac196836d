"""Per-layer quantization sensitivity: SQNR (dB) of each layer's quantized weights and of its
outputs on calibration data against the float model. Lower SQNR = more sensitive."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecompress import kernels
from edgecompress.compressors.common import run_batches
from edgecompress.metrics import sqnr_db
from edgecompress.quantspec import QuantScheme, QuantSpec

if TYPE_CHECKING:
    import torch
    from torch import nn


def quantized_weight(w: torch.Tensor, spec: QuantSpec) -> torch.Tensor | None:
    """The float weight after a round trip through ``spec``'s weight format (None: can't)."""
    packing = kernels.packing  # imports torch on first use
    flat = w.detach().float().reshape(w.shape[0], -1)
    if spec.scheme == QuantScheme.fp16:
        return flat.half().float()
    if spec.scheme == QuantScheme.int4_weight_only:
        if flat.shape[1] % spec.group_size:
            return None
        q, s, z = packing.quantize_int4(flat, spec.group_size, spec.symmetric)
        return packing.dequantize_int4(q, s, z, spec.group_size)
    q, s = packing.quantize_int8_per_channel(flat)
    return packing.dequantize_int8(q, s)


def capture(module: nn.Module, names: list[str], batches) -> dict[str, np.ndarray]:
    """The output of each named layer over ``batches`` (after any forward hooks), flattened."""
    outs: dict[str, list[np.ndarray]] = {n: [] for n in names}
    handles = []
    for name in names:
        sink = outs[name]
        layer = module.get_submodule(name)
        handles.append(
            layer.register_forward_hook(
                lambda m, a, o, s=sink: s.append(o.detach().float().numpy())
            )
        )
    run_batches(module, batches, handles)
    return {n: np.concatenate([o.reshape(-1) for o in v]) for n, v in outs.items() if v}


def report(float_module, quant_module, layers: dict[str, nn.Module], spec, quantized, batches):
    """Rows {layer, type, quantized, weight_sqnr_db, output_sqnr_db}, worst output SQNR first."""
    names = list(layers)
    ref, got = capture(float_module, names, batches), capture(quant_module, names, batches)
    rows = []
    for name, layer in layers.items():
        wq = quantized_weight(layer.weight, spec)
        w = layer.weight.detach().float().reshape(layer.weight.shape[0], -1).numpy()
        rows.append({
            "layer": name,
            "type": type(layer).__name__,
            "quantized": name in quantized,
            "weight_sqnr_db": None if wq is None else _round(sqnr_db(w, wq.numpy())),
            "output_sqnr_db": _round(sqnr_db(ref[name], got[name])) if name in ref else None,
        })  # fmt: skip
    rows.sort(key=lambda r: np.inf if r["output_sqnr_db"] is None else r["output_sqnr_db"])
    return rows


def _round(x: float) -> float | None:
    return round(x, 2) if np.isfinite(x) else None
