"""GPTQ int8 rounding: lower output error than round-to-nearest on the same grid."""

from __future__ import annotations

import numpy as np

from edgecompress.exporters.onnx.gptq import gptq, round_to_nearest

K, N1, N2 = 64, 48, 40


def test_gptq_beats_round_to_nearest_on_correlated_inputs():
    rng = np.random.default_rng(0)
    mix = rng.standard_normal((K, K)) * np.linspace(0.1, 3, K)
    x = rng.standard_normal((4096, K)) @ mix
    w = (rng.standard_normal((K, N1)) * 0.05).astype(np.float32)
    hessian = x.T @ x / len(x)
    q_g, s_g = gptq(w, hessian)
    q_r, s_r = round_to_nearest(w)
    assert q_g.dtype == np.int8 and np.abs(q_g.astype(int)).max() <= 127
    np.testing.assert_allclose(s_g, s_r, rtol=1e-6)  # same per-column grid, other rounding
    err = {
        name: np.linalg.norm(x @ (w - q * s))
        for name, (q, s) in {"gptq": (q_g, s_g), "rtn": (q_r, s_r)}.items()
    }
    assert err["gptq"] < 0.7 * err["rtn"], err


def test_gptq_zeroes_inputs_it_never_saw():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((512, K))
    x[:, :4] = 0  # e.g. outlier channels taken out of the integer path
    w = rng.standard_normal((K, N2)).astype(np.float32)
    q, _ = gptq(w, x.T @ x / len(x))
    assert not q[:4].any()
