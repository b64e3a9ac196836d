"""W4A16 Triton kernel: packed int4 group-wise weights x fp16/bf16/fp32 activations.

The weight layout is :mod:`edgecompress.kernels.packing`'s (uint8 [N, K//2], low nibble =
even k). Each [BLOCK_K, BLOCK_N] tile is unpacked in registers: byte k//2, shifted by
4*(k%2), masked to 4 bits, minus the group's zero point (8 when symmetric), times the group's
scale; then one tl.dot with fp32 accumulation. GEMM / split-K launch as in :mod:`.w8a16`.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from edgecompress.kernels.packing import (
    INT4_SYMMETRIC_ZERO,
    check_activation,
    check_group_size,
    check_weight,
)
from edgecompress.kernels.w8a16 import (
    dot_acc,
    dot_in_f32,
    gemm_configs,
    grid,
    out_buffers,
    splitk_configs,
    store_tile,
    tile_ids,
)

_KEY = ["M", "N", "K"]


@triton.jit
def _w4a16_kernel(
    x_ptr, p_ptr, s_ptr, z_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_pn, stride_pk, stride_sn, stride_sg, stride_ym, stride_yn,
    GROUP_SIZE: tl.constexpr, HAS_ZEROS: tl.constexpr, ZERO: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr, SPLIT_K: tl.constexpr, DOT_F32: tl.constexpr,
):  # fmt: skip
    offs_m, offs_n = tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    offs_k = tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for kb in range(tl.program_id(1), tl.cdiv(K, BLOCK_K), SPLIT_K):
        kk = kb * BLOCK_K + offs_k
        x_mask = (offs_m[:, None] < M) & (kk[None, :] < K)
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + kk[None, :] * stride_xk, x_mask, 0.0)
        w_mask = (kk[:, None] < K) & (offs_n[None, :] < N)
        byte_ptrs = p_ptr + (kk[:, None] // 2) * stride_pk + offs_n[None, :] * stride_pn
        packed = tl.load(byte_ptrs, w_mask, 0).to(tl.int32)
        q = (packed >> ((kk[:, None] % 2) * 4)) & 0xF
        g_off = (kk[:, None] // GROUP_SIZE) * stride_sg + offs_n[None, :] * stride_sn
        scale = tl.load(s_ptr + g_off, w_mask, 0.0)
        if HAS_ZEROS:  # noqa: SIM108  (constexpr branch: no load at all when symmetric)
            zero = tl.load(z_ptr + g_off, w_mask, 0).to(tl.int32)
        else:
            zero = ZERO
        w = (q - zero).to(tl.float32) * scale
        acc = dot_acc(x, w, acc, DOT_F32)
    store_tile(y_ptr, acc, offs_m, offs_n, M, N, stride_ym, stride_yn, SPLIT_K)


_w4a16_gemm = triton.autotune(configs=gemm_configs(), key=_KEY)(_w4a16_kernel)
_w4a16_splitk = triton.autotune(configs=splitk_configs(), key=_KEY, reset_to_zero=["y_ptr"])(
    _w4a16_kernel
)


def _check_scales_zeros(scales, zeros, n: int, groups: int) -> None:
    if scales.dtype != torch.float32 or tuple(scales.shape) != (n, groups):
        raise ValueError(
            f"scales must be float32 [{n}, {groups}], got {scales.dtype} {tuple(scales.shape)}"
        )
    if not scales.is_contiguous():
        raise ValueError("scales must be contiguous")
    if zeros is not None and (zeros.dtype != torch.uint8 or tuple(zeros.shape) != (n, groups)):
        raise ValueError(
            f"zeros must be uint8 [{n}, {groups}] or None, got {zeros.dtype} {tuple(zeros.shape)}"
        )
    if zeros is not None and not zeros.is_contiguous():
        raise ValueError("zeros must be contiguous")


def w4a16_matmul(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int,
) -> torch.Tensor:
    """y = x @ W^T with W the int4 weight [N, K] held as ``packed`` uint8 [N, K // 2]."""
    k = check_activation(x, (torch.float16, torch.bfloat16, torch.float32))
    check_group_size(k, group_size)
    n = check_weight(packed, torch.uint8, k // 2, "packed")
    _check_scales_zeros(scales, zeros, n, k // group_size)
    y, small = out_buffers(x, n)
    if x.shape[0] == 0:
        return y.to(x.dtype)
    kernel = _w4a16_splitk if small else _w4a16_gemm
    z = zeros if zeros is not None else scales  # dummy pointer, never read when HAS_ZEROS=False
    kernel[grid(x.shape[0], n)](
        x, packed, scales, z, y, x.shape[0], n, k,
        x.stride(0), x.stride(1), packed.stride(0), packed.stride(1),
        scales.stride(0), scales.stride(1), y.stride(0), y.stride(1),
        GROUP_SIZE=group_size, HAS_ZEROS=zeros is not None, ZERO=INT4_SYMMETRIC_ZERO,
        DOT_F32=dot_in_f32(x),
    )  # fmt: skip
    return y.to(x.dtype)
