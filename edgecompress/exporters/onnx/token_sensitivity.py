"""Which int8-token inputs need per-token scales: a noise estimate from calibration rows.

Per-token scales cost a row-statistics pass, a Div and a Mul (token_fused.py); an input whose
rows already share one range (a LayerNorm output, once its outlier channels are out) gains
nothing from them. For each input, over calibration rows with the outlier channels zeroed, the
expected quantization noise relative to each row's energy (uniform rounding: step² / 12 per
element) is estimated for

* per-tensor: one step for every row, ``(max(x, 0) - min(x, 0)) / 255``;
* per-token as token_fused.py builds it: row r divided by its range ``s_r``, then one
  per-tensor step over the divided rows, so ``s_r * W / 255`` with W the width of their union.

``plan_input`` (policy ``auto``) takes the cheapest of per-tensor / per-token, each with or
without float outlier channels, whose noise is within a tolerance of the least; ``noise_gain``:
per-tensor noise / per-token noise.
"""

from __future__ import annotations

import numpy as np


def relative_noise(rows: np.ndarray, outliers: np.ndarray, per_token: bool) -> float:
    """Mean over ``rows [R, K]`` (``outliers`` zeroed) of the rounding noise over the row's
    energy, per-tensor or per-token as token_fused.py quantizes."""
    x = rows.astype(np.float64).copy()
    x[:, outliers] = 0
    energy = np.maximum((x * x).sum(1), 1e-30)
    hi, lo = x.max(1), x.min(1)
    if per_token:
        span = np.maximum(hi - lo, 1e-10)
        width = max((hi / span).max(), 0.0) - min((lo / span).min(), 0.0)
        step = span * width / 255
    else:
        step = np.full(len(x), (max(hi.max(), 0.0) - min(lo.min(), 0.0)) / 255)
    return float(np.mean(step**2 * x.shape[1] / energy))


def noise_gain(rows: np.ndarray, outliers: np.ndarray) -> float:
    """Per-tensor over per-token relative noise of ``rows [R, K]`` with ``outliers`` zeroed."""
    tensor = relative_noise(rows, outliers, per_token=False)
    return tensor / max(relative_noise(rows, outliers, per_token=True), 1e-30)


def plan_input(rows: np.ndarray, outliers: np.ndarray, tolerance: float) -> tuple[bool, bool]:
    """(per_token, keep_outliers) for one input: the cheapest of per-tensor, per-tensor with
    float outlier channels, per-token, per-token with outlier channels whose noise is within
    ``tolerance`` times the least of the four (attention outputs and GELU outputs usually
    need no outlier channels once per-token; LayerNorm outputs need both)."""
    none = np.array([], np.int64)
    options = [(False, False), (False, True), (True, False), (True, True)]  # cheapest first
    noise = [relative_noise(rows, outliers if k else none, t) for t, k in options]
    best = min(noise)
    return next(o for o, n in zip(options, noise, strict=True) if n <= tolerance * best)
