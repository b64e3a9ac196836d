"""Layouts: pack/unpack round trips (hypothesis), quantize/dequantize accuracy and errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecompress.kernels import packing
from tests.kernels.conftest import gaussian, sqnr_db


@settings(max_examples=50, deadline=None)
@given(n=st.integers(1, 9), half_k=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_pack_unpack_int4_roundtrip(n, half_k, seed):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 16, (n, 2 * half_k), generator=gen, dtype=torch.uint8)
    packed = packing.pack_int4(q)
    assert packed.shape == (n, half_k) and packed.dtype == torch.uint8
    assert torch.equal(packing.unpack_int4(packed), q)
    # MatMulNBits layout: low nibble = even k, high nibble = odd k
    assert torch.equal(packed & 0xF, q[:, 0::2]) and torch.equal(packed >> 4, q[:, 1::2])


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 6),
    groups=st.integers(1, 4),
    group_size=st.sampled_from([32, 64, 128]),
    symmetric=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_quantize_int4_is_exact_on_its_own_grid(n, groups, group_size, symmetric, seed):
    w = gaussian(n, groups * group_size, seed=seed)
    packed, scales, zeros = packing.quantize_int4(w, group_size, symmetric)
    assert scales.shape == (n, groups) and (zeros is None) == symmetric
    w_hat = packing.dequantize_int4(packed, scales, zeros, group_size)
    assert torch.equal(packing.pack_int4(packing.unpack_int4(packed)), packed)
    # re-quantizing a dequantized weight lands on the same grid points (up to fp rounding)
    again = packing.dequantize_int4(
        *packing.quantize_int4(w_hat, group_size, symmetric), group_size
    )
    assert torch.allclose(again, w_hat, atol=1e-5 * float(w_hat.abs().max()))


def test_int4_zero_point_packing_matches_matmulnbits():
    zeros = torch.tensor([[1, 2, 3], [4, 5, 6]], dtype=torch.uint8)
    assert packing.pack_int4_zero_points(zeros).tolist() == [0x21, 0x83, 0x54, 0x86]


@pytest.mark.parametrize("symmetric", [True, False])
def test_int4_sqnr_floor(symmetric):
    w = gaussian(64, 256, seed=1)
    w_hat = packing.dequantize_int4(*packing.quantize_int4(w, 32, symmetric), 32)
    assert sqnr_db(w, w_hat) >= 15


def test_int8_per_channel_and_per_token():
    w = gaussian(64, 200, seed=2)
    q, s = packing.quantize_int8_per_channel(w)
    assert q.dtype == torch.int8 and s.shape == (64,) and s.dtype == torch.float32
    assert sqnr_db(w, packing.dequantize_int8(q, s)) >= 30
    xq, xs = packing.per_token_quantize_int8(w)
    assert torch.equal(xq, q) and torch.allclose(xs, s)


def test_int4_group_size_errors():
    with pytest.raises(ValueError, match="not divisible by the int4 group_size 64"):
        packing.quantize_int4(gaussian(4, 96), 64)
    with pytest.raises(ValueError, match="group_size must be one of"):
        packing.quantize_int4(gaussian(4, 96), 48)
