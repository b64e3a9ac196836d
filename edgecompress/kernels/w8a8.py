"""W8A8 dynamic Triton kernels: per-token int8 activations x per-channel int8 weights.

1. ``_per_token_quant_kernel``: one program per row; pass 1 finds max|x|, pass 2 writes
   q = round_half_away(x / scale) with scale = max|x| / 127 (fp32, like
   :func:`edgecompress.kernels.packing.per_token_quantize_int8`, so the two agree exactly).
2. ``_w8a8_kernel``: int8 x int8 tl.dot with an int32 accumulator; the epilogue multiplies by
   x_scale[m] * w_scale[n] in fp32. GEMM / split-K launch as in :mod:`.w8a16` (split-K adds the
   rescaled fp32 partials).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from edgecompress.kernels.packing import check_activation, check_weight
from edgecompress.kernels.w8a16 import (
    INTERPRET,
    gemm_configs,
    grid,
    out_buffers,
    splitk_configs,
    store_tile,
    tile_ids,
)

_KEY = ["M", "N", "K"]


@triton.jit
def _per_token_quant_kernel(
    x_ptr, q_ptr, s_ptr, K, stride_xm, stride_xk, stride_qm, stride_qk, BLOCK_K: tl.constexpr
):
    row = tl.program_id(0)
    offs = tl.arange(0, BLOCK_K)
    amax = tl.zeros((BLOCK_K,), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x = tl.load(x_ptr + row * stride_xm + (k0 + offs) * stride_xk, (k0 + offs) < K, 0.0)
        amax = tl.maximum(amax, tl.abs(x.to(tl.float32)))
    scale = tl.maximum(tl.max(amax, axis=0) / 127.0, 1e-12)
    tl.store(s_ptr + row, scale)
    for k0 in range(0, K, BLOCK_K):
        mask = (k0 + offs) < K
        v = tl.load(x_ptr + row * stride_xm + (k0 + offs) * stride_xk, mask, 0.0)
        v = v.to(tl.float32) / scale
        v = tl.where(v >= 0, tl.floor(v + 0.5), -tl.floor(-v + 0.5))
        v = tl.minimum(tl.maximum(v, -127.0), 127.0)
        tl.store(q_ptr + row * stride_qm + (k0 + offs) * stride_qk, v.to(tl.int8), mask)


def per_token_quant(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton per-token int8 quantization of x [M, K]: (q int8 [M, K], scale float32 [M])."""
    k = check_activation(x, (torch.float16, torch.bfloat16, torch.float32))
    m = x.shape[0]
    q = torch.empty((m, k), dtype=torch.int8, device=x.device)
    s = torch.empty((m,), dtype=torch.float32, device=x.device)
    if m == 0 or k == 0:
        return q, s.fill_(1e-12)
    block_k = min(triton.next_power_of_2(k), 256 if INTERPRET else 4096)
    _per_token_quant_kernel[(m,)](
        x, q, s, k, x.stride(0), x.stride(1), q.stride(0), q.stride(1), BLOCK_K=block_k
    )
    return q, s


@triton.jit
def _w8a8_kernel(
    x_ptr, xs_ptr, w_ptr, ws_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr,
):  # fmt: skip
    offs_m, offs_n = tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for kb in range(tl.program_id(1), tl.cdiv(K, BLOCK_K), SPLIT_K):
        kk = kb * BLOCK_K + offs_k
        x_mask = (offs_m[:, None] < M) & (kk[None, :] < K)
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + kk[None, :] * stride_xk, x_mask, 0)
        w_mask = (kk[:, None] < K) & (offs_n[None, :] < N)
        w = tl.load(w_ptr + kk[:, None] * stride_wk + offs_n[None, :] * stride_wn, w_mask, 0)
        acc = tl.dot(x, w, acc, out_dtype=tl.int32)
    xs = tl.load(xs_ptr + offs_m, mask=offs_m < M, other=0.0)
    ws = tl.load(ws_ptr + offs_n, mask=offs_n < N, other=0.0)
    out = acc.to(tl.float32) * xs[:, None] * ws[None, :]
    store_tile(y_ptr, out, offs_m, offs_n, M, N, stride_ym, stride_yn, SPLIT_K)


_w8a8_gemm = triton.autotune(configs=gemm_configs(), key=_KEY)(_w8a8_kernel)
_w8a8_splitk = triton.autotune(configs=splitk_configs(), key=_KEY, reset_to_zero=["y_ptr"])(
    _w8a8_kernel
)


def w8a8_matmul(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Dynamic W8A8: per-token int8 quantize x [M, K], int8 GEMM with qweight int8 [N, K]."""
    k = check_activation(x, (torch.float16, torch.bfloat16, torch.float32))
    n = check_weight(qweight, torch.int8, k, "qweight")
    if scales.dtype != torch.float32 or tuple(scales.shape) != (n,):
        raise ValueError(f"scales must be float32 [{n}], got {scales.dtype} {tuple(scales.shape)}")
    xq, xs = per_token_quant(x)
    m = x.shape[0]
    y, small = out_buffers(x, n)
    if m == 0:
        return y.to(x.dtype)
    kernel = _w8a8_splitk if small else _w8a8_gemm
    kernel[grid(m, n)](
        xq, xs, qweight, scales, y, m, n, k,
        xq.stride(0), xq.stride(1), qweight.stride(0), qweight.stride(1), y.stride(0), y.stride(1),
    )  # fmt: skip
    return y.to(x.dtype)
