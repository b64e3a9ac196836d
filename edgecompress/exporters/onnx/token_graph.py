"""The ONNX subgraph of one int8-token group: the MatMuls that read one activation tensor.

For an input ``x [..., K]`` and the group's weights concatenated to ``[K, N]``::

    xm = x * mask                      # outlier channels zeroed (they go the float way)
    per token r: lo, hi = min, max(xm_r);  s_r = (hi - lo) / 254
                 c_r = round((hi + lo) / 2 / s_r);  zp_r = 128 - c_r
    q  = QuantizeLinear(xm, s, zp, axis=0)          # uint8, one scale per token
    F  = MatMulIntegerToFloat(q, Wq, 1, w_scale, 128)  # (q - 128) @ Wq * w_scale, VNNI path
    y  = s_r * F + [x_outliers, c_r * s_r, 1] @ [W_outliers; colsum(Wq) * w_scale; bias]

``zp_r - 128`` is folded into the small rank-(k+2) MatMul, so the integer GEMM keeps the
scalar zero point onnxruntime's u8s8 kernels want (s8s8 fell back to a kernel 10x slower
here). One Split hands each MatMul its columns back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Member:
    """One MatMul of the group: int8 weights, their per-column scales, bias, outlier rows."""

    output: str  # the tensor the replaced MatMul (or its bias Add) produced
    q: np.ndarray  # int8 [K, N]
    scale: np.ndarray  # float32 [N]
    bias: np.ndarray  # float32 [N]
    w_outliers: np.ndarray  # float32 [k, N]: the float weights of the outlier channels


class GroupBuilder:
    """Nodes and initializers for one group, every name prefixed with ``prefix``."""

    def __init__(self, prefix: str, opset: int):
        self.prefix, self.opset = prefix, opset
        self.nodes, self.inits = [], []

    def name(self, s: str) -> str:
        return f"{self.prefix}_{s}"

    def const(self, s: str, value) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value), self.name(s)))
        return self.name(s)

    def node(self, op: str, inputs: list[str], out: str, domain: str = "", **attrs) -> str:
        from onnx import helper

        made = helper.make_node(
            op, inputs, [self.name(out)], self.name(out), domain=domain, **attrs
        )
        self.nodes.append(made)
        return self.name(out)

    def reduce(self, op: str, x: str, out: str) -> str:
        """Reduce over the last axis, kept (axes moved from attribute to input in opset 18)."""
        if self.opset >= 18:
            return self.node(op, [x, self.const(f"{out}_axes", np.array([-1]))], out, keepdims=1)
        return self.node(op, [x], out, axes=[-1], keepdims=1)

    def build(self, x: str, k_dim: int, outliers: np.ndarray, members: list[Member]) -> None:
        x2 = self.node("Reshape", [x, self.const("x2d", np.array([-1, k_dim]))], "x2")
        src, x_out = self._split_outliers(x2, k_dim, outliers)
        q, s_col, corr_col, ones_col = self._quantize_rows(src)
        y = self._matmul(q, s_col, corr_col, ones_col, x_out, members)
        if self.opset >= 15:  # Shape's start / end attributes: one node instead of two
            lead = self.node("Shape", [x], "lead", start=0, end=-1)
        else:
            shape = self.node("Shape", [x], "shape")
            lead = self.node("Slice", [shape, *self._ints("lead", 0, -1)], "lead")
        n_total = sum(len(m.scale) for m in members)
        shape = self.node("Concat", [lead, self.const("n", np.array([n_total]))], "oshape", axis=0)
        y = self.node("Reshape", [y, shape], "y")
        self._hand_back(y, members)

    def _ints(self, s: str, *values: int) -> list[str]:
        return [self.const(f"{s}{i}", np.array([v])) for i, v in enumerate(values)]

    def _split_outliers(self, x: str, k_dim: int, outliers: np.ndarray):
        """(x with the outlier channels zeroed, the outlier channels [..., k]) of ``x``."""
        if not len(outliers):
            return x, None
        mask = np.ones(k_dim, np.float32)
        mask[outliers] = 0
        src = self.node("Mul", [x, self.const("mask", mask)], "xm")
        picked = self.const("oidx", outliers.astype(np.int64))
        return src, self.node("Gather", [x, picked], "xo", axis=-1)

    def row_range(self, x: str) -> tuple[str, str, str]:
        """(max, min, max - min at least 1e-10) of each row of ``x``, shaped [..., 1]."""
        hi, lo = self.reduce("ReduceMax", x, "hi"), self.reduce("ReduceMin", x, "lo")
        span = self.node("Sub", [hi, lo], "span0")
        return hi, lo, self.node("Max", [span, self.const("eps", np.float32(1e-10))], "span")

    def _quantize_rows(self, x2: str):
        from onnx import TensorProto

        hi, lo, span = self.row_range(x2)
        s_col = self.node("Mul", [span, self.const("inv254", np.float32(1 / 254))], "s")
        mid = self.node("Div", [self.node("Add", [hi, lo], "sum"), span], "mid0")
        centre = self.node(
            "Round", [self.node("Mul", [mid, self.const("c127", np.float32(127))], "mid")], "c"
        )
        zp = self.node("Sub", [self.const("f128", np.float32(128)), centre], "zpf")
        zp = self.node("Cast", [zp], "zp8", to=TensorProto.UINT8)
        flat = self.const("flat", np.array([-1]))
        zp, s_row = (
            self.node("Reshape", [zp, flat], "zp"),
            self.node("Reshape", [s_col, flat], "srow"),
        )
        q = self.node("QuantizeLinear", [x2, s_row, zp], "q", axis=0)
        corr = self.node("Mul", [centre, s_col], "corr")
        ones = self.node("Div", [s_col, s_col], "ones")  # s_col >= 1e-10 / 254: exactly 1
        return q, s_col, corr, ones

    def _matmul(self, q, s_col, corr_col, ones_col, x_out, members: list[Member]) -> str:
        wq = np.concatenate([m.q for m in members], 1).astype(np.int8)
        scale = np.concatenate([m.scale for m in members]).astype(np.float32)
        bias = np.concatenate([m.bias for m in members]).astype(np.float32)
        colsum = wq.astype(np.int64).sum(0).astype(np.float32) * scale
        rows = [np.concatenate([m.w_outliers for m in members], 1)] if x_out else []
        w_rank = np.concatenate([*rows, colsum[None, :], bias[None, :]], 0).astype(np.float32)
        rank_in = [x_out] if x_out else []
        rank_in = self.node("Concat", [*rank_in, corr_col, ones_col], "r", axis=1)
        one, zp128 = self.const("one_s", np.float32(1)), self.const("zp128", np.uint8(128))
        inputs = [q, self.const("wq", wq), one, self.const("ws", scale), zp128]
        f = self.node("MatMulIntegerToFloat", inputs, "F", domain="com.microsoft")
        scaled = self.node("Mul", [f, s_col], "sF")
        # Gemm: the rank-(k+2) MatMul and the Add in one pass over [R, N]
        return self.node("Gemm", [rank_in, self.const("wr", w_rank), scaled], "y2")

    def _hand_back(self, y: str, members: list[Member]) -> None:
        from onnx import helper

        outs = [m.output for m in members]
        if len(members) == 1:
            self.nodes.append(helper.make_node("Identity", [y], outs, self.name("out")))
            return
        sizes = self.const("sizes", np.array([len(m.scale) for m in members]))
        self.nodes.append(helper.make_node("Split", [y, sizes], outs, self.name("split"), axis=-1))
