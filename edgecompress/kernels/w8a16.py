"""W8A16 Triton kernel: int8 per-output-channel weights x fp16/bf16/fp32 activations.

y[M, N] = x[M, K] @ (q[N, K] * scale[N, None])^T, fp32 accumulation, output in x's dtype.
Large M uses a grouped-tile GEMM (triton tutorial 03); M <= SMALL_M uses a split-K GEMV-style
launch that atomically adds fp32 partials, because tiny M leaves too few output tiles to fill
the GPU. The launch helpers here are shared with the W4A16 and W8A8 files.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from edgecompress.kernels.packing import check_activation, check_weight

SMALL_M = 16
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"
_KEY = ["M", "N", "K"]


def _cfg(bm, bn, bk, gm, sk, stages, warps):
    meta = {"BLOCK_M": bm, "BLOCK_N": bn, "BLOCK_K": bk, "GROUP_M": gm, "SPLIT_K": sk}
    return triton.Config(meta, num_stages=stages, num_warps=warps)


def gemm_configs() -> list:
    """Autotune table for M > SMALL_M (one tiny config under the CPU interpreter)."""
    if INTERPRET:
        return [_cfg(32, 32, 32, 4, 1, 1, 1)]
    return [
        _cfg(128, 256, 64, 8, 1, 3, 8),
        _cfg(64, 256, 32, 8, 1, 4, 4),
        _cfg(128, 128, 32, 8, 1, 4, 4),
        _cfg(128, 64, 32, 8, 1, 4, 4),
        _cfg(64, 128, 32, 8, 1, 4, 4),
        _cfg(128, 128, 64, 8, 1, 3, 8),
        _cfg(64, 64, 64, 8, 1, 4, 4),
    ]


def splitk_configs() -> list:
    """Autotune table for M <= SMALL_M: one 16-row tile, K split across programs."""
    if INTERPRET:
        return [_cfg(16, 32, 32, 1, 2, 1, 1)]
    return [
        _cfg(16, bn, bk, 1, sk, 4, 4)
        for bn in (32, 64, 128)
        for bk in (64, 128, 256)
        for sk in (1, 4, 8)
        if bn * bk <= 16384
    ]


def grid(m: int, n: int):
    """Launch grid: output tiles on axis 0, K splits on axis 1."""

    def _grid(meta):
        tiles = triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"])
        return (tiles, meta["SPLIT_K"])

    return _grid


def dot_in_f32(x: torch.Tensor) -> bool:
    """fp32 inputs dot in IEEE fp32 (not tf32); bf16 too under the CPU interpreter, whose
    float->bf16 casts are broken (triton 3.x), so the kernel never converts to bf16 there."""
    return x.dtype == torch.float32 or (INTERPRET and x.dtype == torch.bfloat16)


def out_buffers(x: torch.Tensor, n: int) -> tuple[torch.Tensor, bool]:
    """(output buffer, small-M?) — small M accumulates split-K partials into zeroed fp32."""
    m = x.shape[0]
    if m <= SMALL_M:
        return torch.zeros((m, n), dtype=torch.float32, device=x.device), True
    dtype = torch.float32 if dot_in_f32(x) else x.dtype  # cast back to x.dtype by the caller
    return torch.empty((m, n), dtype=dtype, device=x.device), False


@triton.jit
def dot_acc(x, w, acc, DOT_F32: tl.constexpr):
    """acc += x @ w with w converted in registers to the activation (or fp32) dtype."""
    if DOT_F32:
        acc = tl.dot(x.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee")
    else:
        acc = tl.dot(x, w.to(x.dtype), acc)
    return acc


@triton.jit
def tile_ids(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    """Grouped ordering of output tiles for L2 reuse (triton tutorial 03)."""
    pid = tl.program_id(0)
    num_pid_m = tl.cdiv(M, BLOCK_M)
    num_pid_n = tl.cdiv(N, BLOCK_N)
    num_pid_in_group = GROUP_M * num_pid_n
    first_pid_m = (pid // num_pid_in_group) * GROUP_M
    group_size_m = min(num_pid_m - first_pid_m, GROUP_M)
    pid_m = first_pid_m + ((pid % num_pid_in_group) % group_size_m)
    pid_n = (pid % num_pid_in_group) // group_size_m
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    return offs_m, offs_n


@triton.jit
def store_tile(y_ptr, acc, offs_m, offs_n, M, N, stride_ym, stride_yn, SPLIT_K: tl.constexpr):
    """Store a finished tile, or atomically add a split-K partial into the fp32 buffer."""
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :] * stride_yn
    mask = (offs_m[:, None] < M) & (offs_n[None, :] < N)
    if SPLIT_K == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=mask)
    else:
        tl.atomic_add(y_ptrs, acc, mask=mask)


@triton.jit
def _w8a16_kernel(
    x_ptr, w_ptr, s_ptr, y_ptr,
    M, N, K,
    stride_xm, stride_xk, stride_wn, stride_wk, stride_ym, stride_yn,
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
        w = tl.load(w_ptr + kk[:, None] * stride_wk + offs_n[None, :] * stride_wn, w_mask, 0)
        acc = dot_acc(x, w, acc, DOT_F32)
    scale = tl.load(s_ptr + offs_n, mask=offs_n < N, other=0.0)
    acc = acc * scale[None, :]
    store_tile(y_ptr, acc, offs_m, offs_n, M, N, stride_ym, stride_yn, SPLIT_K)


_w8a16_gemm = triton.autotune(configs=gemm_configs(), key=_KEY)(_w8a16_kernel)
_w8a16_splitk = triton.autotune(configs=splitk_configs(), key=_KEY, reset_to_zero=["y_ptr"])(
    _w8a16_kernel
)


def w8a16_matmul(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """y = x @ (qweight * scales[:, None])^T for x [M, K] fp16/bf16/fp32, qweight int8 [N, K]."""
    k = check_activation(x, (torch.float16, torch.bfloat16, torch.float32))
    n = check_weight(qweight, torch.int8, k, "qweight")
    if scales.dtype != torch.float32 or tuple(scales.shape) != (n,):
        raise ValueError(f"scales must be float32 [{n}], got {scales.dtype} {tuple(scales.shape)}")
    y, small = out_buffers(x, n)
    if x.shape[0] == 0:
        return y.to(x.dtype)
    kernel = _w8a16_splitk if small else _w8a16_gemm
    kernel[grid(x.shape[0], n)](
        x, qweight, scales, y, x.shape[0], n, k,
        x.stride(0), x.stride(1), qweight.stride(0), qweight.stride(1), y.stride(0), y.stride(1),
        DOT_F32=dot_in_f32(x),
    )  # fmt: skip
    return y.to(x.dtype)
