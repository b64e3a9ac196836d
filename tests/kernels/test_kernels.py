"""Triton kernels (CPU interpreter) vs the torch references; SQNR floors; input errors.

Shapes are deliberately not block multiples. int4 needs K % group_size == 0, so it uses
group 32 with K in {64, 96, 224} (and 64/128 groups at K = 192/256) instead of K = 200.
fp32 runs the full shape product; fp16/bf16 a corner subset to keep the suite fast.
"""

import itertools

import pytest
import torch

pytest.importorskip("triton")

from edgecompress.kernels import ops, packing  # noqa: E402
from edgecompress.kernels.w4a16 import w4a16_matmul  # noqa: E402
from edgecompress.kernels.w8a8 import per_token_quant, w8a8_matmul  # noqa: E402
from edgecompress.kernels.w8a16 import w8a16_matmul  # noqa: E402
from tests.kernels.conftest import gaussian, sqnr_db  # noqa: E402

MS, NS = (1, 3, 17, 64), (8, 70, 130)
# max |kernel - reference| <= TOL * max |reference|: fp32 is near-exact, half types round once
TOL = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}
HALF_CASES = [(m, 70, dt) for m in (1, 64) for dt in (torch.float16, torch.bfloat16)]


def _cases(ks):
    full = [(m, k, n, torch.float32) for m, k, n in itertools.product(MS, ks, NS)]
    return full + [(m, ks[-1], n, dt) for m, n, dt in HALF_CASES]


def _check(y, ref, float_ref, dtype, floor_db):
    assert y.dtype == dtype and y.shape == ref.shape
    err = (y.float() - ref.float()).abs().max().item()
    assert err <= TOL[dtype] * ref.abs().max().item() + 1e-6, err
    assert sqnr_db(float_ref, y.float()) >= floor_db


@pytest.mark.parametrize("m,k,n,dtype", _cases((64, 96, 200)))
def test_w8a16_matches_reference(m, k, n, dtype):
    x, w = gaussian(m, k, seed=m + k, dtype=dtype), gaussian(n, k, seed=n)
    q, s = packing.quantize_int8_per_channel(w)
    y = w8a16_matmul(x, q, s)
    _check(y, ops.reference_w8a16(x, q, s), x.float() @ w.T, dtype, 30)


@pytest.mark.parametrize("m,k,n,dtype", _cases((64, 96, 224)))
def test_w4a16_matches_reference(m, k, n, dtype):
    x, w = gaussian(m, k, seed=m + k, dtype=dtype), gaussian(n, k, seed=n)
    symmetric = (m + n) % 2 == 0  # alternate so both zero-point paths see every shape kind
    p, s, z = packing.quantize_int4(w, 32, symmetric)
    y = w4a16_matmul(x, p, s, z, 32)
    _check(y, ops.reference_w4a16(x, p, s, z, None, 32), x.float() @ w.T, dtype, 15)


@pytest.mark.parametrize("group_size,k", [(64, 192), (128, 256)])
@pytest.mark.parametrize("m", [3, 33])
def test_w4a16_other_group_sizes(group_size, k, m):
    x, w = gaussian(m, k, seed=5), gaussian(70, k, seed=6)
    p, s, z = packing.quantize_int4(w, group_size, symmetric=False)
    y = w4a16_matmul(x, p, s, z, group_size)
    _check(y, ops.reference_w4a16(x, p, s, z, None, group_size), x @ w.T, torch.float32, 15)


@pytest.mark.parametrize("m,k,n,dtype", _cases((64, 96, 200)))
def test_w8a8_matches_reference(m, k, n, dtype):
    x, w = gaussian(m, k, seed=m + k, dtype=dtype), gaussian(n, k, seed=n)
    q, s = packing.quantize_int8_per_channel(w)
    y = w8a8_matmul(x, q, s)
    _check(y, ops.reference_w8a8(x, q, s), x.float() @ w.T, dtype, 30)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_per_token_quant_kernel_is_exact(dtype):
    x = gaussian(5, 300, seed=3, dtype=dtype) * 3
    q, s = per_token_quant(x)
    rq, rs = packing.per_token_quantize_int8(x)
    assert torch.equal(q, rq) and torch.equal(s, rs)


def _int8_weight(n=8, k=64):
    return packing.quantize_int8_per_channel(gaussian(n, k))


@pytest.mark.parametrize("fn", [w8a16_matmul, w8a8_matmul])
def test_int8_kernels_reject_bad_inputs(fn):
    q, s = _int8_weight()
    with pytest.raises(ValueError, match="dtype torch.float64"):
        fn(gaussian(4, 64).double(), q, s)
    with pytest.raises(ValueError, match="must be contiguous"):
        fn(gaussian(64, 4).t(), q, s)
    with pytest.raises(ValueError, match="shape mismatch"):
        fn(gaussian(4, 96), q, s)
    with pytest.raises(ValueError, match="qweight must have dtype torch.int8"):
        fn(gaussian(4, 64), q.to(torch.uint8), s)


def test_w4a16_rejects_bad_inputs():
    p, s, z = packing.quantize_int4(gaussian(8, 64), 32, symmetric=False)
    with pytest.raises(ValueError, match="not divisible by the int4 group_size 64"):
        w4a16_matmul(gaussian(4, 96), p, s, z, 64)
    with pytest.raises(ValueError, match="dtype torch.int32"):
        w4a16_matmul(torch.ones(4, 64, dtype=torch.int32), p, s, z, 32)
    with pytest.raises(ValueError, match="must be contiguous"):
        w4a16_matmul(gaussian(64, 4).t(), p, s, z, 32)
    with pytest.raises(ValueError, match="shape mismatch"):
        w4a16_matmul(gaussian(4, 128), p, s, z, 32)
    with pytest.raises(ValueError, match="zeros must be uint8"):
        w4a16_matmul(gaussian(4, 64), p, s, z.float(), 32)
