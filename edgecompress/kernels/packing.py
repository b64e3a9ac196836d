"""The one definition of the quantized weight layouts used by kernels, QuantLinear and ONNX.

int8 weights: ``q`` int8 [N, K], symmetric per-output-channel, ``scale`` float32 [N],
``w ~= q * scale[:, None]``.

int4 weights: unsigned 4-bit ``q`` in [0, 15], group-wise along K,
``w ~= (q - zero) * scale`` with ``zero = 8`` when symmetric (implicit, not stored).
Packed along K two per byte, LOW nibble = even k, HIGH nibble = odd k: ``packed`` uint8
[N, K // 2]. This is onnxruntime's ``com.microsoft::MatMulNBits`` layout (B reshaped to
[N, K // block, block // 2], scales flattened to [N * K // block]), so the ONNX exporter
reuses the buffers without repacking.
"""

from __future__ import annotations

import torch

INT4_GROUP_SIZES = (32, 64, 128)
INT4_SYMMETRIC_ZERO = 8
_EPS = 1e-12  # keeps all-zero rows/groups from dividing by zero


def _round_half_away(v: torch.Tensor) -> torch.Tensor:
    # Same rounding as the Triton kernels (they have no round-half-even), so both agree bit-wise.
    return torch.sign(v) * torch.floor(v.abs() + 0.5)


def _check_2d(w: torch.Tensor, name: str) -> None:
    if w.dim() != 2:
        raise ValueError(f"{name} must be 2-D [N, K], got shape {tuple(w.shape)}")
    if not w.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {w.dtype}")


def quantize_int8_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: returns (q int8 [N, K], scale float32 [N])."""
    _check_2d(w, "weight")
    w32 = w.detach().float()
    scale = (w32.abs().amax(dim=1) / 127.0).clamp_min(_EPS)
    q = _round_half_away(w32 / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """float32 [N, K] weight represented by int8 ``q`` [N, K] and ``scale`` [N]."""
    return q.float() * scale.float()[:, None]


def per_token_quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8 of activations x [M, K]: (q int8 [M, K], scale float32 [M]).

    Mirrors the Triton per-token kernel exactly (fp32 math, divide, round half away from zero).
    """
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D [M, K], got shape {tuple(x.shape)}")
    x32 = x.float()
    scale = (x32.abs().amax(dim=1) / 127.0).clamp_min(_EPS) if x.shape[1] else x32.new_ones(0)
    q = _round_half_away(x32 / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q, scale


def check_group_size(k: int, group_size: int) -> None:
    """Raise ValueError unless ``group_size`` is supported and divides ``k``."""
    if group_size not in INT4_GROUP_SIZES:
        raise ValueError(f"int4 group_size must be one of {INT4_GROUP_SIZES}, got {group_size}")
    if k % group_size != 0:
        raise ValueError(
            f"K (in_features) = {k} is not divisible by the int4 group_size {group_size}"
        )


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Pack uint8 values in [0, 15] of shape [N, K] (K even) into uint8 [N, K // 2]."""
    if q.dim() != 2 or q.shape[1] % 2:
        raise ValueError(f"pack_int4 needs a 2-D tensor with even K, got {tuple(q.shape)}")
    q = q.to(torch.uint8)
    return (q[:, 0::2] & 0xF) | ((q[:, 1::2] & 0xF) << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: uint8 [N, K // 2] -> uint8 [N, K] in [0, 15]."""
    if packed.dim() != 2 or packed.dtype != torch.uint8:
        raise ValueError(f"unpack_int4 needs 2-D uint8, got {packed.dtype} {tuple(packed.shape)}")
    low, high = packed & 0xF, packed >> 4
    return torch.stack((low, high), dim=2).reshape(packed.shape[0], -1)


def quantize_int4(
    w: torch.Tensor, group_size: int = 128, symmetric: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Group-wise int4 of w [N, K]: (packed uint8 [N, K//2], scales f32 [N, G], zeros u8 or None).

    ``G = K // group_size``; ``zeros`` is None when symmetric (implicit zero point 8).
    """
    _check_2d(w, "weight")
    n, k = w.shape
    check_group_size(k, group_size)
    g = w.detach().float().reshape(n, k // group_size, group_size)
    if symmetric:
        scales = (g.abs().amax(dim=2) / 7.0).clamp_min(_EPS)
        zeros = torch.full_like(scales, INT4_SYMMETRIC_ZERO)
    else:
        lo = g.amin(dim=2).clamp_max(0.0)  # keep 0.0 representable exactly
        hi = g.amax(dim=2).clamp_min(0.0)
        scales = ((hi - lo) / 15.0).clamp_min(_EPS)
        zeros = _round_half_away(-lo / scales).clamp(0, 15)
    q = _round_half_away(g / scales[..., None]) + zeros[..., None]
    q = q.clamp(0, 15).to(torch.uint8).reshape(n, k)
    zero_out = None if symmetric else zeros.to(torch.uint8)
    return pack_int4(q), scales, zero_out


def dequantize_int4(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor | None,
    group_size: int,
) -> torch.Tensor:
    """float32 [N, K] weight represented by the packed int4 layout."""
    q = unpack_int4(packed).float()
    n, k = q.shape
    check_group_size(k, group_size)
    z = float(INT4_SYMMETRIC_ZERO) if zeros is None else zeros.float()[..., None]
    g = (q.reshape(n, k // group_size, group_size) - z) * scales.float()[..., None]
    return g.reshape(n, k)


def pack_int4_zero_points(zeros: torch.Tensor) -> torch.Tensor:
    """MatMulNBits' uint8 zero-point layout: [N, G] nibbles -> [N * ceil(G / 2)] bytes.

    Rows are padded with the symmetric zero 8 when G is odd (as onnxruntime's quantizer does).
    """
    n, g = zeros.shape
    if g % 2:
        pad = torch.full((n, 1), INT4_SYMMETRIC_ZERO, dtype=torch.uint8, device=zeros.device)
        zeros = torch.cat([zeros.to(torch.uint8), pad], dim=1)
    return pack_int4(zeros).reshape(-1)


def check_activation(x: torch.Tensor, dtypes: tuple[torch.dtype, ...]) -> int:
    """Validate a kernel's activation x [M, K]; returns K."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"x must be a 2-D tensor [M, K], got {getattr(x, 'shape', type(x))}")
    if x.dtype not in dtypes:
        names = ", ".join(str(d) for d in dtypes)
        raise ValueError(f"x has dtype {x.dtype}; the kernel supports only {names}")
    if not x.is_contiguous():
        raise ValueError("x must be contiguous; call .contiguous() first")
    return x.shape[1]


def check_weight(w: torch.Tensor, dtype: torch.dtype, k: int, name: str) -> int:
    """Validate a packed weight [N, k]; returns N."""
    if w.dtype != dtype:
        raise ValueError(f"{name} must have dtype {dtype}, got {w.dtype}")
    if w.dim() != 2 or w.shape[1] != k:
        raise ValueError(
            f"shape mismatch: {name} has shape {tuple(w.shape)}, expected [N, {k}] to match x"
        )
    if not w.is_contiguous():
        raise ValueError(f"{name} must be contiguous")
    return w.shape[0]
