"""Kernel tests run on CPU through the Triton interpreter: set the flag before triton loads.

Also holds the small helpers the kernel tests share (imported as ``tests.kernels.conftest``).
"""

import os

os.environ["TRITON_INTERPRET"] = "1"

import torch  # noqa: E402  (after the flag on purpose)


def sqnr_db(signal: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio of ``approx`` against ``signal``, in dB."""
    signal, noise = signal.double(), (approx.double() - signal.double())
    return float(10 * torch.log10(signal.pow(2).sum() / noise.pow(2).sum().clamp_min(1e-30)))


def gaussian(*shape: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen).to(dtype)
