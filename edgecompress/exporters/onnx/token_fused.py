"""The ONNX subgraph of one int8-token group, built around onnxruntime's fused int8 op.

For an input ``x [..., K]`` and the group's weights concatenated to ``[K, N]``::

    xm = x * mask                          # outlier channels zeroed (they go the float way)
    per-token groups:  s_r = max(xm_r) - min(xm_r);  xn = xm / s_r
                       y = s_r * DynamicQuantizeMatMul(xn, Wq, w_scale) + x_out @ W_out + b
    per-tensor groups: y = DynamicQuantizeMatMul(xm, Wq, w_scale, bias=b) + x_out @ W_out

Dividing each row by its own range gives every token the same range (one width, offsets
differing by the row's asymmetry), so the per-tensor scale and zero point that
``com.microsoft.DynamicQuantizeMatMul`` computes inside its kernel are, to within that offset
spread, per-token ones: the row statistics cost two reductions and one Div, the rest (range,
quantization, u8s8 VNNI GEMM, per-column weight scales, bias) is one fused node. No contrib
op takes per-row A scales (MatMulIntegerToFloat / DynamicQuantizeMatMul: a_scale must be a
scalar), hence the Div before and the Mul after; token_sensitivity.plan_input picks, per
input, per-tensor or per-token, with or without the float outlier channels. The bias Add comes
last so that onnxruntime's BiasGelu / SkipLayerNormalization fusions can take it. Shapes stay
[..., K] -> [..., N] (no Reshape to 2-D); one Split hands each MatMul its columns back. 2-12
nodes per group instead of token_graph.py's ~27, yet measured no faster on MiniLM-L6 and less
accurate (benchmarks/results/int8-token-profile.md): the separate [R, N] Mul / Add passes
cost what the nodes saved. Kept as ``scheme="fused"`` for the search, not the default.
"""

from __future__ import annotations

import numpy as np

from edgecompress.exporters.onnx.token_graph import GroupBuilder, Member


class FusedGroupBuilder(GroupBuilder):
    """Nodes and initializers for one group; ``per_token`` picks the row-normalised path."""

    def __init__(self, prefix: str, opset: int, per_token: bool):
        super().__init__(prefix, opset)
        self.per_token = per_token

    def build(self, x: str, k_dim: int, outliers: np.ndarray, members: list[Member]) -> None:
        wq = np.concatenate([m.q for m in members], 1).astype(np.int8)
        scale = np.concatenate([m.scale for m in members]).astype(np.float32)
        bias = np.concatenate([m.bias for m in members]).astype(np.float32)
        src, x_out = self._split_outliers(x, k_dim, outliers)
        span = self.row_range(src)[2] if self.per_token else None
        if span is not None:
            src = self.node("Div", [src, span], "xn")
        dq_in = [src, self.const("wq", wq), self.const("ws", scale)]
        if span is None:  # per-tensor: the bias rides in the fused op
            dq_in += ["", self.const("b", bias)]
        y = self.node("DynamicQuantizeMatMul", dq_in, "F", domain="com.microsoft")
        if span is not None:
            y = self.node("Mul", [y, span], "sF")
        if x_out is not None:
            w_out = np.concatenate([m.w_outliers for m in members], 1).astype(np.float32)
            fo = self.node("MatMul", [x_out, self.const("wo", w_out)], "fo")
            y = self.node("Add", [y, fo], "yo")
        if span is not None and np.any(bias):
            y = self.node("Add", [y, self.const("b", bias)], "yb")
        self._hand_back(y, members)
