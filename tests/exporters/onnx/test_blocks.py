"""Weight-only quantization fits a block size to every layer, or keeps it float, never fails
on a shape; Gemm layers with constant weights become MatMul first."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgecompress.exporters.onnx.blocks import fitting_block, gemm_to_matmul, plan_blocks
from edgecompress.exporters.onnx.quantize import quantize_nbits
from edgecompress.runtimes import OnnxRunner


@pytest.mark.parametrize(
    ("k", "block", "want"),
    [(256, 128, 128), (96, 128, 32), (48, 32, 16), (40, 128, None), (8, 128, None),
     (192, 96, 64), (128, 16, 16)],
)  # fmt: skip
def test_fitting_block_is_the_largest_power_of_two_that_divides(k, block, want):
    assert fitting_block(k, block) == want


def chain(ks: list[int], n_out: int = 24, seed: int = 0) -> onnx.ModelProto:
    """x[.., ks[0]] -> MatMul -> ... one MatMul per K (each layer's N is the next K)."""
    rng = np.random.default_rng(seed)
    dims = [*ks, n_out]
    inits, nodes, prev = [], [], "x"
    for i, (k, n) in enumerate(zip(dims, dims[1:], strict=False)):
        w = (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"y{i}"], f"layer{i}"))
        prev = f"y{i}"
    graph = helper.make_graph(
        nodes, "chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", ks[0]])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", n_out])],
        inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_plan_names_each_layers_block_and_the_float_ones():
    plan = plan_blocks(chain([256, 96, 40]), 128, ("MatMul",), exclude=["layer0"])
    assert plan.sizes == {"layer1": 32}  # layer0 excluded by the caller
    assert "40 is not divisible" in plan.floats["layer2"]
    assert plan.to_dict() == {"block_sizes_fitted": {"layer1": 32}, "float_layers": plan.floats}


@pytest.mark.parametrize("bits", [4, 8])
def test_whole_model_quantization_fits_blocks_and_keeps_odd_layers_float(tmp_path, bits):
    src, dst = tmp_path / "chain.onnx", tmp_path / "chain.q.onnx"
    onnx.save(chain([256, 96, 40, 48]), str(src))
    details = quantize_nbits(src, dst, bits, 128, True, [])
    assert details["block_sizes_fitted"] == {"layer1": 32, "layer3": 16}
    assert list(details["float_layers"]) == ["layer2"]
    assert (details["matmulnbits_nodes"], details["float_matmuls_left"]) == (3, 1)
    blocks = sorted(
        helper.get_attribute_value(a)
        for n in onnx.load(str(dst)).graph.node
        if n.op_type == "MatMulNBits"
        for a in n.attribute
        if a.name == "block_size"
    )
    assert blocks == [16, 32, 128]
    x = {"x": np.random.default_rng(1).standard_normal((4, 256)).astype(np.float32)}
    want, got = OnnxRunner(src).run(x), OnnxRunner(dst).run(x)
    rel = np.abs(want["y3"] - got["y3"]).max() / np.abs(want["y3"]).max()
    assert rel < (0.25 if bits == 4 else 0.02)


def gemm_model(trans_b: int, shared: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 32) if trans_b else (32, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], "fc", transB=trans_b)]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])]
    if shared:  # the same weight read by another node (tied embeddings do this)
        nodes.append(helper.make_node("Identity", ["w"], ["w_out"], "tie"))
        outputs.append(helper.make_tensor_value_info("w_out", TensorProto.FLOAT, list(w.shape)))
    graph = helper.make_graph(
        nodes, "gemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32])],
        outputs, [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


@pytest.mark.parametrize(("trans_b", "shared"), [(0, False), (1, False), (1, True)])
def test_gemm_to_matmul_keeps_the_outputs(tmp_path, trans_b, shared):
    model = gemm_model(trans_b, shared)
    onnx.save(model, str(tmp_path / "gemm.onnx"))
    assert gemm_to_matmul(model) == ["fc"]
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node][:2] == ["MatMul", "Add"]
    onnx.save(model, str(tmp_path / "matmul.onnx"))
    x = {"x": np.random.default_rng(2).standard_normal((2, 32)).astype(np.float32)}
    want = OnnxRunner(tmp_path / "gemm.onnx").run(x)
    got = OnnxRunner(tmp_path / "matmul.onnx").run(x)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], atol=1e-5)
