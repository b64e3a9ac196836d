"""ONNX translations of the ``edgecompress::*`` custom ops for the dynamo ONNX exporter.

Use: ``torch.onnx.export(model, args, f, dynamo=True,
custom_translation_table=onnx_custom_translation_table())``. Each value is a traced onnxscript
function (torch.onnx reads its signature: unannotated params are inputs, ``int`` ones are
attributes). Mapping:

- ``w4a16_linear`` -> ``com.microsoft::MatMulNBits`` (bits=4, block_size=group_size, K, N,
  accuracy_level=0), B = the packed uint8 buffer reshaped to [N, K/block, block/2] and scales
  flattened to [N * K/block] (our layout *is* MatMulNBits'); asymmetric zero points are
  re-packed to MatMulNBits' two-per-byte layout by a few integer ONNX ops on the (constant)
  uint8 zeros; symmetric -> no zero_points input (default 8). Bias -> Add.
- ``w8a16_linear`` -> ``DequantizeLinear(qweight, scales, axis=0)`` -> Transpose -> MatMul
  (+ Add bias), computed in fp32 and cast to x's dtype.
- ``w8a8_linear`` -> the exact per-token symmetric quantization of x in ONNX ops
  (ReduceMax|x| / 127, Div, round half away from zero, Clip, Cast int8), then
  int8 x int8 ``MatMulInteger`` (int32) with the transposed int8 weight,
  Cast to float, times x_scale * w_scale (+ Add bias). It matches the torch reference
  (not the asymmetric uint8 ``DynamicQuantizeLinear``, which would compute something else).
"""

from __future__ import annotations

import torch
from onnx.defs import OpSchema
from onnxscript import opset18 as op
from onnxscript.values import Op, Opset

from edgecompress.kernels import ops  # noqa: F401  (the torch.ops.edgecompress.* keys)
from edgecompress.kernels.packing import INT4_SYMMETRIC_ZERO


def _matmul_nbits_op() -> Op:
    """onnx ships no schemas for onnxruntime's contrib ops and the exporter needs one to bind
    inputs/attributes, so declare the subset of MatMulNBits (com.microsoft, v1) we emit."""
    fp, opt, attr = OpSchema.FormalParameter, OpSchema.FormalParameterOption, OpSchema.Attribute
    floats = ["tensor(float)", "tensor(float16)", "tensor(bfloat16)"]
    schema = OpSchema(
        "MatMulNBits",
        "com.microsoft",
        1,
        inputs=[fp("A", "T1"), fp("B", "T2"), fp("scales", "T1"),
                fp("zero_points", "T2", param_option=opt.Optional)],
        outputs=[fp("Y", "T1")],
        type_constraints=[("T1", floats, ""), ("T2", ["tensor(uint8)"], "")],
        attributes=[attr(a, OpSchema.AttrType.INT, "")
                    for a in ("K", "N", "bits", "block_size", "accuracy_level")],
    )  # fmt: skip
    return Op(Opset("com.microsoft", 1), "MatMulNBits", schema)


_MATMUL_NBITS = _matmul_nbits_op()


def _epilogue(y, x, bias):
    """Add the bias (if any) in fp32 and cast the result to x's dtype."""
    if bias is not None:
        y = op.Add(y, op.Cast(bias, to=1))
    return op.CastLike(y, x)


def _pack_zero_points(zeros, n: int, groups: int):
    """uint8 [N, G] nibbles -> MatMulNBits' [N * ceil(G/2)] bytes (odd G padded with 8)."""
    z = op.Cast(zeros, to=7)  # int64: ORT has no uint8 Mul/Add kernels
    if groups % 2:
        pad = op.Constant(value_ints=[0, 0, 0, 1])
        z = op.Pad(z, pad, op.Constant(value_int=INT4_SYMMETRIC_ZERO))
    z = op.Reshape(z, op.Constant(value_ints=[n, (groups + 1) // 2, 2]))
    axis = op.Constant(value_ints=[2])
    low = op.Slice(z, op.Constant(value_ints=[0]), op.Constant(value_ints=[1]), axis)
    high = op.Slice(z, op.Constant(value_ints=[1]), op.Constant(value_ints=[2]), axis)
    packed = op.Add(low, op.Mul(high, op.Constant(value_int=16)))
    return op.Cast(op.Reshape(packed, op.Constant(value_ints=[-1])), to=2)  # uint8


def w4a16_to_onnx(x, packed, scales, zeros=None, bias=None, group_size: int = 128):
    """edgecompress::w4a16_linear -> com.microsoft::MatMulNBits."""
    n, k = packed.shape[0], packed.shape[1] * 2
    groups = k // group_size
    b = op.Reshape(packed, op.Constant(value_ints=[n, groups, group_size // 2]))
    s = op.CastLike(op.Reshape(scales, op.Constant(value_ints=[-1])), x)
    inputs = [x, b, s]
    if zeros is not None:
        inputs.append(_pack_zero_points(zeros, n, groups))
    y = _MATMUL_NBITS(*inputs, K=k, N=n, bits=4, block_size=group_size, accuracy_level=0)
    if bias is not None:
        y = op.Add(y, op.CastLike(bias, y))
    return y


def w8a16_to_onnx(x, qweight, scales, bias=None):
    """edgecompress::w8a16_linear -> DequantizeLinear(axis=0) + MatMul (+ Add)."""
    w = op.DequantizeLinear(qweight, scales, axis=0)  # fp32 [N, K]
    y = op.MatMul(op.Cast(x, to=1), op.Transpose(w, perm=[1, 0]))
    return _epilogue(y, x, bias)


def w8a8_to_onnx(x, qweight, scales, bias=None):
    """edgecompress::w8a8_linear -> per-token int8 quantization + MatMulInteger (exact)."""
    xf = op.Cast(x, to=1)
    amax = op.ReduceMax(op.Abs(xf), op.Constant(value_ints=[-1]), keepdims=1)
    x_scale = op.Max(op.Div(amax, op.Constant(value_float=127.0)), op.Constant(value_float=1e-12))
    v = op.Div(xf, x_scale)
    v = op.Mul(op.Sign(v), op.Floor(op.Add(op.Abs(v), op.Constant(value_float=0.5))))
    lim = 127.0
    v = op.Clip(v, op.Constant(value_float=-lim), op.Constant(value_float=lim))
    xq = op.Cast(v, to=3)  # int8
    acc = op.MatMulInteger(xq, op.Transpose(qweight, perm=[1, 0]))  # int32 [..., N]
    y = op.Mul(op.Mul(op.Cast(acc, to=1), x_scale), scales)
    return _epilogue(y, x, bias)


def onnx_custom_translation_table() -> dict:
    """``{torch.ops.edgecompress.<op>.default: onnxscript function}`` for torch.onnx.export."""
    return {
        torch.ops.edgecompress.w4a16_linear.default: w4a16_to_onnx,
        torch.ops.edgecompress.w8a16_linear.default: w8a16_to_onnx,
        torch.ops.edgecompress.w8a8_linear.default: w8a8_to_onnx,
    }
