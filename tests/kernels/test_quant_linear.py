"""QuantLinear: from_linear accuracy, state_dict round trip, torch.export and ONNX (ORT)."""

import numpy as np
import pytest
import torch
from torch import nn

from edgecompress.kernels import SCHEMES, QuantLinear, onnx_custom_translation_table
from tests.kernels.conftest import gaussian, sqnr_db

FLOORS = {"int8-weight-only": 30, "int4-weight-only": 15, "int8-dynamic": 30}
# (scheme, symmetric): asymmetric int4 exercises the MatMulNBits zero-point packing
VARIANTS = [(s, True) for s in SCHEMES] + [("int4-weight-only", False)]


def _linear(k=96, n=64, bias=True, seed=0):
    torch.manual_seed(seed)
    return nn.Linear(k, n, bias=bias)


def _model(scheme, symmetric):
    float_model = nn.Sequential(_linear(96, 64), nn.ReLU(), _linear(64, 40, bias=False, seed=1))
    quant = nn.Sequential(
        *(
            QuantLinear.from_linear(m, scheme, 32, symmetric) if isinstance(m, nn.Linear) else m
            for m in float_model
        )
    )
    return float_model.eval(), quant.eval()


@pytest.mark.parametrize("scheme,symmetric", VARIANTS)
def test_from_linear_close_to_float(scheme, symmetric):
    lin = _linear()
    q = QuantLinear.from_linear(lin, scheme, group_size=32, symmetric=symmetric)
    x = gaussian(2, 7, 96, seed=4)
    with torch.no_grad():
        y, ref = q(x), lin(x)
    assert y.shape == ref.shape
    assert sqnr_db(ref, y) >= FLOORS[scheme]
    assert sqnr_db(lin.weight.detach(), q.dequantized_weight()) >= FLOORS[scheme]
    assert q.weight_bytes() < lin.weight.numel() * 4
    assert scheme in repr(q)


@pytest.mark.parametrize("scheme,symmetric", VARIANTS)
def test_state_dict_round_trip(scheme, symmetric, tmp_path):
    src = QuantLinear.from_linear(_linear(), scheme, group_size=32, symmetric=symmetric)
    torch.save(src.state_dict(), tmp_path / "q.pt")
    dst = QuantLinear(96, 64, True, scheme, 32, symmetric)
    dst.load_state_dict(torch.load(tmp_path / "q.pt", weights_only=True))
    x = gaussian(3, 96, seed=7)
    assert torch.equal(src(x), dst(x))
    assert dst.weight_bytes() == src.weight_bytes()


def test_from_linear_rejects_indivisible_group():
    with pytest.raises(ValueError, match="not divisible by the int4 group_size 128"):
        QuantLinear.from_linear(_linear(96, 8), "int4-weight-only", group_size=128)
    with pytest.raises(ValueError, match="unknown QuantLinear scheme"):
        QuantLinear(96, 8, scheme="int3")


@pytest.mark.parametrize("scheme,symmetric", VARIANTS)
def test_torch_export_runs_and_matches(scheme, symmetric):
    _, model = _model(scheme, symmetric)
    x = gaussian(2, 5, 96, seed=8)
    ep = torch.export.export(model, (x,))
    targets = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    assert any(t.startswith("edgecompress.") for t in targets), targets
    assert torch.allclose(ep.module()(x), model(x), atol=1e-6)


@pytest.mark.parametrize("scheme,symmetric", VARIANTS)
def test_onnx_export_runs_in_onnxruntime(scheme, symmetric, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    _, model = _model(scheme, symmetric)
    x = gaussian(2, 5, 96, seed=9)
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        model, (x,), path, dynamo=True, custom_translation_table=onnx_custom_translation_table()
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max(), rtol=0)
    ops = {n.op_type for n in __import__("onnx").load(path).graph.node}
    expected = {"int4-weight-only": "MatMulNBits", "int8-weight-only": "DequantizeLinear"}
    assert expected.get(scheme, "MatMulInteger") in ops


def test_torch_compile_traces_custom_op():
    _, model = _model("int4-weight-only", True)
    x = gaussian(3, 96, seed=10)
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    assert torch.allclose(compiled(x), model(x), atol=1e-6)


def test_package_import_does_not_import_triton():
    import subprocess
    import sys

    code = "import sys, edgecompress.kernels; print('triton' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
