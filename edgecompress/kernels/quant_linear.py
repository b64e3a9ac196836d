"""QuantLinear: an ``nn.Linear`` replacement holding packed quantized weights as buffers.

Schemes (layouts in :mod:`edgecompress.kernels.packing`):

- ``"int8-weight-only"``: ``qweight`` int8 [N, K], ``scales`` f32 [N] -> ``w8a16_linear``
- ``"int4-weight-only"``: ``qweight`` uint8 [N, K//2], ``scales`` f32 [N, K//group_size],
  ``zeros`` uint8 [N, K//group_size] only when asymmetric -> ``w4a16_linear``
- ``"int8-dynamic"``: as int8-weight-only, activations quantized per token -> ``w8a8_linear``
"""

from __future__ import annotations

import torch
from torch import nn

from edgecompress.kernels import (
    ops,  # noqa: F401  (registers torch.ops.edgecompress.*)
    packing,
)

SCHEMES = ("int8-weight-only", "int4-weight-only", "int8-dynamic")


class QuantLinear(nn.Module):
    """y = x @ W^T + b with W stored quantized; forward calls the ``edgecompress::*`` op."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        scheme: str = "int8-weight-only",
        group_size: int = 128,
        symmetric: bool = True,
    ):
        super().__init__()
        if scheme not in SCHEMES:
            raise ValueError(f"unknown QuantLinear scheme {scheme!r}; expected one of {SCHEMES}")
        self.in_features, self.out_features = in_features, out_features
        self.scheme, self.group_size, self.symmetric = scheme, group_size, symmetric
        n, k = out_features, in_features
        if scheme == "int4-weight-only":
            packing.check_group_size(k, group_size)
            g = k // group_size
            self.register_buffer("qweight", torch.zeros(n, k // 2, dtype=torch.uint8))
            self.register_buffer("scales", torch.ones(n, g, dtype=torch.float32))
            zeros = None if symmetric else torch.full((n, g), 8, dtype=torch.uint8)
            self.register_buffer("zeros", zeros)
        else:
            self.register_buffer("qweight", torch.zeros(n, k, dtype=torch.int8))
            self.register_buffer("scales", torch.ones(n, dtype=torch.float32))
            self.register_buffer("zeros", None)
        self.register_buffer("bias", torch.zeros(n) if bias else None)

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        scheme: str = "int8-weight-only",
        group_size: int = 128,
        symmetric: bool = True,
    ) -> QuantLinear:
        """Quantize ``linear``; ValueError when int4 and in_features % group_size != 0."""
        has_bias = linear.bias is not None
        mod = cls(linear.in_features, linear.out_features, has_bias, scheme, group_size, symmetric)
        w = linear.weight.detach()
        if scheme == "int4-weight-only":
            q, s, z = packing.quantize_int4(w, group_size, symmetric)
            if z is not None:
                mod.zeros.copy_(z)
        else:
            q, s = packing.quantize_int8_per_channel(w)
        mod.qweight.copy_(q)
        mod.scales.copy_(s)
        if has_bias:
            mod.bias = linear.bias.detach().clone()  # keeps the float dtype of the source
        return mod.to(w.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scheme == "int4-weight-only":
            return torch.ops.edgecompress.w4a16_linear(
                x, self.qweight, self.scales, self.zeros, self.bias, self.group_size
            )
        op = (
            torch.ops.edgecompress.w8a8_linear
            if self.scheme == "int8-dynamic"
            else torch.ops.edgecompress.w8a16_linear
        )
        return op(x, self.qweight, self.scales, self.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 [out_features, in_features] weight this module represents."""
        if self.scheme == "int4-weight-only":
            return packing.dequantize_int4(self.qweight, self.scales, self.zeros, self.group_size)
        return packing.dequantize_int8(self.qweight, self.scales)

    def weight_bytes(self) -> int:
        """Bytes of every stored tensor: packed weight, scales, zero points and bias."""
        return sum(b.numel() * b.element_size() for b in self.buffers(recurse=False))

    def extra_repr(self) -> str:
        s = f"in_features={self.in_features}, out_features={self.out_features}, "
        s += f"bias={self.bias is not None}, scheme={self.scheme}"
        if self.scheme == "int4-weight-only":
            s += f", group_size={self.group_size}, symmetric={self.symmetric}"
        return s
