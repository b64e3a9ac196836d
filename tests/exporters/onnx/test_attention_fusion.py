"""Attention cores -> com.microsoft.MultiHeadAttention: exact with padding, or refused."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgecompress.exporters.onnx import attention_fusion as af
from edgecompress.exporters.onnx.attention_fusion import fuse_attention, fuse_attention_file
from tests.exporters.onnx.text_models import TEXTS, text_feeds


def _outputs(model, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})


def _ops(model) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


def test_tiny_bert_fused_exactly_with_padding(tiny_bert_raw):
    path, bundle = tiny_bert_raw
    model = onnx.load(str(path))
    check = [text_feeds(bundle, TEXTS[:3]), text_feeds(bundle, TEXTS[3:])]
    fused, details = fuse_attention(model, check)
    assert details["attention"] == "MultiHeadAttention" and details["attention_cores"] == 6
    assert details["attention_max_abs_diff"] <= 1e-5
    ops = _ops(fused)
    assert ops["MultiHeadAttention"] == 6 and "Softmax" not in ops
    assert ops["MatMul"] == _ops(model)["MatMul"] - 12  # Q·Kᵀ and P·V gone, projections kept
    node = next(n for n in fused.graph.node if n.op_type == "MultiHeadAttention")
    assert node.domain == "com.microsoft" and node.input[4].startswith("mha_mask")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert attrs == {"num_heads": 4, "mask_filter_value": -50.0}  # default scale 1/sqrt(8)
    # unseen inputs: a padded batch whose lengths differ, and batch 1 without padding
    for feeds in (
        text_feeds(bundle, [TEXTS[1], TEXTS[2], TEXTS[0]]),
        text_feeds(bundle, TEXTS[2:3]),
    ):
        assert feeds["attention_mask"].min() == (0 if len(feeds["input_ids"]) > 1 else 1)
        ref, got = _outputs(model, feeds), _outputs(fused, feeds)
        assert len(ref) == len(got)
        for r, g in zip(ref, got, strict=True):
            assert np.abs(r - g).max() <= 1e-5


def test_int8_token_groups_untouched_and_exact(tiny_bert_raw, tmp_path):
    from edgecompress.exporters.onnx.token_int8 import quantize_token_int8

    path, bundle = tiny_bert_raw
    calib = [text_feeds(bundle, TEXTS[:2]), text_feeds(bundle, TEXTS[2:])] * 4
    plain, fused = tmp_path / "token.onnx", tmp_path / "token-mha.onnx"
    off = quantize_token_int8(path, plain, calib)["int8_token"]
    on = quantize_token_int8(path, fused, calib, attention_fusion=True)["int8_token"]
    assert off["attention"] == "unfused" and on["attention"] == "MultiHeadAttention"
    assert on["attention_max_abs_diff"] <= 1e-5  # checked on the float graph
    a, b = onnx.load(str(plain)), onnx.load(str(fused))
    ops_a, ops_b = _ops(a), _ops(b)
    assert ops_b["MultiHeadAttention"] == 6 and "Softmax" not in ops_b
    assert ops_a["MatMulIntegerToFloat"] == ops_b["MatMulIntegerToFloat"] == 24
    # calibrated on the unfused graph: the same int8 weights and scales, bit for bit
    int8 = {i.name: numpy_helper.to_array(i) for i in a.graph.initializer}
    weights = [i for i in b.graph.initializer if i.data_type == TensorProto.INT8]
    assert len(weights) >= 24
    for init in weights:
        assert np.array_equal(numpy_helper.to_array(init), int8[init.name])
    feeds = text_feeds(bundle, [TEXTS[3], TEXTS[0]])
    for r, g in zip(_outputs(a, feeds), _outputs(b, feeds), strict=True):
        assert np.abs(r - g).max() <= 1e-4


def test_file_copy_when_no_attention(tmp_path):
    """A graph without a Softmax comes back unchanged, with the reason."""
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"], "mm")],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])],
        [w],
    )
    src, dst = tmp_path / "mlp.onnx", tmp_path / "out.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    details = fuse_attention_file(src, dst)
    assert details == {
        "attention": "unfused",
        "attention_fusion_refused": "no Softmax attention core in the graph",
    }
    assert onnx.load(str(dst)) == onnx.load(str(src))


def test_refused_when_outputs_differ(tiny_bert_raw, monkeypatch):
    """A wrong rewrite (here: 2 heads instead of 4) is caught by the check and not applied."""
    path, bundle = tiny_bert_raw
    model = onnx.load(str(path))
    real = af.match_core

    def two_heads(g, softmax):
        core, why = real(g, softmax)
        core.num_heads, core.head_size = 2, 16
        return core, why

    monkeypatch.setattr(af, "match_core", two_heads)
    same, details = fuse_attention(model, [text_feeds(bundle, TEXTS[:2])])
    assert same is model and details["attention"] == "unfused"
    assert "fused outputs differ by" in details["attention_fusion_refused"]
    assert "> 1e-05 on the check feeds" in details["attention_fusion_refused"]


def test_refused_when_mask_is_not_from_an_input(tiny_bert_raw):
    """A softmax whose additive mask is a constant does not match: graph unchanged."""
    path, _ = tiny_bert_raw
    model = onnx.load(str(path))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    add = next(n for n in model.graph.node if n.output[0] == softmax.input[0])
    model.graph.initializer.append(
        numpy_helper.from_array(np.zeros((1, 1, 1, 1), np.float32), "const_mask")
    )
    add.input[1] = "const_mask"
    same, details = fuse_attention(model)
    assert same is model
    assert "not computed from an integer [B, S] graph input" in details["attention_fusion_refused"]


def test_exporter_option_fuses_int8_token(tiny_bert_dir, tmp_path):
    """OnnxConfig.token_attention_fusion: the exported int8-token file has the fused cores,
    says so in its details, and validates like the unfused one."""
    from edgecompress.context import RunContext
    from edgecompress.data import load_sentences
    from edgecompress.exporters.onnx.exporter import OnnxConfig, export_onnx
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    bundle = load_hf(tiny_bert_dir, task)
    ctx = RunContext(load_sentences(), tmp_path)
    config = OnnxConfig(
        quantize=["int8-token"], calibration_samples=32, token_attention_fusion=True
    )
    assert OnnxConfig.model_validate_json(config.model_dump_json()) == config
    (token,) = export_onnx(bundle, config, ctx, tmp_path / "out")
    details = token.details["int8_token"]
    assert details["attention"] == "MultiHeadAttention" and details["attention_cores"] == 6
    assert details["attention_max_abs_diff"] <= 1e-5
    assert _ops(onnx.load(str(token.path)))["MultiHeadAttention"] == 6
    assert token.validation["passed"] and token.validation["cosine"] >= 0.999


def test_refused_when_a_core_tensor_is_read_outside(tiny_bert_raw):
    """The attention probabilities of one layer as a graph output: that core cannot go."""
    path, _ = tiny_bert_raw
    model = onnx.load(str(path))
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    model.graph.output.append(
        helper.make_tensor_value_info(softmax.output[0], TensorProto.FLOAT, None)
    )
    same, details = fuse_attention(model)
    assert same is model
    assert details["attention_fusion_refused"].endswith(
        "a tensor inside the core is also read outside it"
    )
