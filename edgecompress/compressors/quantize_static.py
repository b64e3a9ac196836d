"""int8-static, simulated in torch: calibrated per-tensor activation ranges at the inputs and
outputs of every Conv/Linear (uint8, asymmetric), per-channel symmetric int8 weights.

Observers (numpy, bounded memory): ``minmax``; ``percentile`` (clip to the given percentile);
``entropy`` (TensorRT-style: the clipping threshold minimising the KL divergence between the
histogram of |x| and its 128-level quantization).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecompress.compressors.common import run_batches
from edgecompress.quantspec import CalibrationMethod

if TYPE_CHECKING:
    import torch
    from torch import nn

SAMPLE_CAP = 1 << 18


class Observer:
    """Running min/max plus a bounded random sample of the values seen."""

    def __init__(self, seed: int = 0):
        self.lo, self.hi = np.inf, -np.inf
        self.samples: list[np.ndarray] = []
        self.count = 0
        self.rng = np.random.default_rng(seed)

    def __call__(self, t: torch.Tensor) -> None:
        x = t.detach().float().reshape(-1).numpy()
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        if len(x) > SAMPLE_CAP // 8:
            x = self.rng.choice(x, SAMPLE_CAP // 8, replace=False)
        self.samples.append(x)
        self.count += len(x)
        if self.count > SAMPLE_CAP:
            allx = np.concatenate(self.samples)
            self.samples = [self.rng.choice(allx, SAMPLE_CAP // 2, replace=False)]
            self.count = SAMPLE_CAP // 2

    def range(self, method: CalibrationMethod, percentile: float = 99.99) -> tuple[float, float]:
        if method == CalibrationMethod.minmax or not self.samples:
            return self.lo, self.hi
        x = np.concatenate(self.samples)
        if method == CalibrationMethod.percentile:
            lo, hi = np.percentile(x, [100 - percentile, percentile])
            return float(lo), float(hi)
        t = kl_threshold(np.abs(x))
        return max(self.lo, -t), min(self.hi, t)


def kl_threshold(absx: np.ndarray, bins: int = 2048, levels: int = 128) -> float:
    """|x| clipping threshold minimising KL(P || Q) of the clipped histogram vs its quantization."""
    top = float(absx.max())
    if top == 0.0:
        return 0.0
    hist, edges = np.histogram(absx, bins=bins, range=(0.0, top))
    hist = hist.astype(np.float64)
    best, best_kl = bins, np.inf
    for i in range(levels, bins + 1, 16):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        q = np.zeros(i)
        for chunk in np.array_split(np.arange(i), levels):
            nz = chunk[hist[chunk] > 0]
            if len(nz):
                q[nz] = hist[chunk].sum() / len(nz)
        mask = p > 0
        pn, qn = p / p.sum(), q / max(q.sum(), 1e-12)
        kl = float(np.sum(pn[mask] * np.log(pn[mask] / np.maximum(qn[mask], 1e-12))))
        if kl < best_kl:
            best, best_kl = i, kl
    return float(edges[best])


def qparams(lo: float, hi: float) -> tuple[float, int]:
    """uint8 asymmetric scale and zero point covering [lo, hi] (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max((hi - lo) / 255.0, 1e-8)
    return scale, int(np.clip(round(-lo / scale), 0, 255))


class FakeQuantInput:
    """forward_pre_hook: fake-quantize the layer's input to uint8."""

    def __init__(self, scale: float, zero_point: int):
        self.scale, self.zero_point = scale, zero_point

    def __call__(self, module, args):
        import torch

        x = torch.fake_quantize_per_tensor_affine(args[0], self.scale, self.zero_point, 0, 255)
        return (x, *args[1:])


class FakeQuantOutput(FakeQuantInput):
    """forward_hook: fake-quantize the layer's output to uint8."""

    def __call__(self, module, args, output):
        import torch

        return torch.fake_quantize_per_tensor_affine(output, self.scale, self.zero_point, 0, 255)


def fake_quant_weight(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 (levels -127..127)."""
    import torch

    flat = w.detach().reshape(w.shape[0], -1)
    scale = (flat.abs().amax(1) / 127.0).clamp(min=1e-12).float()
    zero = torch.zeros(w.shape[0], dtype=torch.int32)
    return torch.fake_quantize_per_channel_affine(w.detach().float(), scale, zero, 0, -127, 127)


def calibrate(module: nn.Module, names: list[str], batches) -> dict[str, tuple[Observer, Observer]]:
    """Run ``batches`` (lists of positional tensors) and observe each layer's input and output."""
    observers = {n: (Observer(), Observer()) for n in names}
    handles = []
    for name in names:
        obs_in, obs_out = observers[name]
        layer = module.get_submodule(name)
        handles.append(layer.register_forward_pre_hook(lambda m, a, o=obs_in: o(a[0])))
        handles.append(layer.register_forward_hook(lambda m, a, out, o=obs_out: o(out)))
    run_batches(module, batches, handles)
    return observers


def apply_static(module, names, batches, method, percentile) -> dict[str, dict]:
    """Calibrate, then fake-quantize weights, inputs and outputs of ``names`` in place."""
    import torch

    observers = calibrate(module, names, batches)
    ranges = {}
    for name in names:
        layer = module.get_submodule(name)
        lo_in, hi_in = observers[name][0].range(method, percentile)
        lo_out, hi_out = observers[name][1].range(method, percentile)
        with torch.no_grad():
            layer.weight.copy_(fake_quant_weight(layer.weight))
        layer.register_forward_pre_hook(FakeQuantInput(*qparams(lo_in, hi_in)))
        layer.register_forward_hook(FakeQuantOutput(*qparams(lo_out, hi_out)))
        ranges[name] = {
            "input": [round(lo_in, 6), round(hi_in, 6)],
            "output": [round(lo_out, 6), round(hi_out, 6)],
        }
    return ranges
