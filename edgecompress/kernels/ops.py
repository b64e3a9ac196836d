"""``torch.library`` custom ops for the quantized linears, with fake (meta) impls.

Ops (namespace ``edgecompress``), all computing ``x @ W^T (+ bias)`` for x [..., K]:

- ``edgecompress::w8a16_linear(Tensor x, Tensor qweight, Tensor scales, Tensor? bias)``
- ``edgecompress::w4a16_linear(Tensor x, Tensor packed, Tensor scales, Tensor? zeros,
  Tensor? bias, int group_size)``
- ``edgecompress::w8a8_linear(Tensor x, Tensor qweight, Tensor scales, Tensor? bias)``

The real impl runs the Triton kernel when x is on CUDA and triton imports, else a torch
reference (dequantize, matmul in fp32). triton is imported lazily so this module (and
``torch.export`` / ONNX export on CPU) works without it. The fake impls let ``torch.export``
and ``torch.compile`` trace models containing these ops.
"""

import functools

import torch

from edgecompress.kernels import packing


@functools.cache
def triton_available() -> bool:
    """True when triton imports (checked once, lazily)."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def _use_triton(x: torch.Tensor) -> bool:
    return x.is_cuda and triton_available()


def _finish(y2d: torch.Tensor, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Reshape [M, N] back to x's leading dims, add bias, return in x's dtype."""
    if bias is not None:
        y2d = y2d + bias.to(y2d.dtype)
    return y2d.reshape(*x.shape[:-1], y2d.shape[-1]).to(x.dtype)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1]).contiguous()


def reference_w8a16(x, qweight, scales, bias=None) -> torch.Tensor:
    """Torch reference: dequantize int8 weights, fp32 matmul."""
    y = _flat(x).float() @ packing.dequantize_int8(qweight, scales).T
    return _finish(y, x, bias)


def reference_w4a16(x, packed, scales, zeros, bias, group_size) -> torch.Tensor:
    """Torch reference: dequantize int4 weights, fp32 matmul."""
    w = packing.dequantize_int4(packed, scales, zeros, group_size)
    return _finish(_flat(x).float() @ w.T, x, bias)


def reference_w8a8(x, qweight, scales, bias=None) -> torch.Tensor:
    """Torch reference: per-token int8 x, exact integer matmul (in float64), rescale."""
    xq, xs = packing.per_token_quantize_int8(_flat(x))
    acc = (xq.double() @ qweight.double().T).float()  # exact: |sum| << 2**53
    return _finish(acc * xs[:, None] * scales.float()[None, :], x, bias)


@torch.library.custom_op("edgecompress::w8a16_linear", mutates_args=())
def w8a16_linear(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    if not _use_triton(x):
        return reference_w8a16(x, qweight, scales, bias)
    from edgecompress.kernels.w8a16 import w8a16_matmul

    return _finish(w8a16_matmul(_flat(x), qweight, scales), x, bias)


@torch.library.custom_op("edgecompress::w4a16_linear", mutates_args=())
def w4a16_linear(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    bias: torch.Tensor | None,
    group_size: int,
) -> torch.Tensor:
    if not _use_triton(x):
        return reference_w4a16(x, packed, scales, zeros, bias, group_size)
    from edgecompress.kernels.w4a16 import w4a16_matmul

    return _finish(w4a16_matmul(_flat(x), packed, scales, zeros, group_size), x, bias)


@torch.library.custom_op("edgecompress::w8a8_linear", mutates_args=())
def w8a8_linear(
    x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    if not _use_triton(x):
        return reference_w8a8(x, qweight, scales, bias)
    from edgecompress.kernels.w8a8 import w8a8_matmul

    return _finish(w8a8_matmul(_flat(x), qweight, scales), x, bias)


def _fake_out(x: torch.Tensor, n: int) -> torch.Tensor:
    return x.new_empty((*x.shape[:-1], n))


@w8a16_linear.register_fake
def _(x, qweight, scales, bias):
    return _fake_out(x, qweight.shape[0])


@w4a16_linear.register_fake
def _(x, packed, scales, zeros, bias, group_size):
    return _fake_out(x, packed.shape[0])


@w8a8_linear.register_fake
def _(x, qweight, scales, bias):
    return _fake_out(x, qweight.shape[0])
