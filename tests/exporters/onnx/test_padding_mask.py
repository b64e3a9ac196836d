"""The attention mask's finfo.min padding value -> -50: same outputs, or refused with the reason."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgecompress.exporters.onnx.padding_mask import MASK_VALUE, mask_sites, soften_padding_mask
from tests.exporters.onnx.text_models import TEXTS, text_feeds


def _run(model, feeds: dict) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {i.name: feeds[i.name] for i in session.get_inputs()})


def test_tiny_bert_mask_softened_with_padding_outputs_unchanged(tiny_bert_raw):
    path, bundle = tiny_bert_raw
    model = onnx.load(str(path))
    assert len(mask_sites(model)) == 1  # one mask, built once, added in all 6 layers
    padded = text_feeds(bundle, TEXTS)
    assert (padded["attention_mask"] == 0).any()
    softened, details = soften_padding_mask(model, [padded])
    assert details["padding_mask"] == MASK_VALUE and details["padding_mask_constants"] == 1
    assert details["padding_mask_max_rel_diff"] <= 1e-5
    assert mask_sites(softened) == [] and len(mask_sites(model)) == 1  # the input is untouched
    for a, b in zip(_run(model, padded), _run(softened, padded), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)


def _toy_attention() -> onnx.ModelProto:
    """Softmax(scores + (1 - mask) * finfo.min) @ values: the HF additive mask, scores given."""
    big = numpy_helper.from_array(np.array([np.finfo(np.float32).min], np.float32), "big")
    one = numpy_helper.from_array(np.array([1.0], np.float32), "one")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    nodes = [
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "m"], ["pad"]),
        helper.make_node("Mul", ["pad", "big"], ["additive"]),
        helper.make_node("Unsqueeze", ["additive", "axes"], ["additive3"]),
        helper.make_node("Add", ["scores", "additive3"], ["masked"]),
        helper.make_node("Softmax", ["masked"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "values"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [None, None]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, None, None]),
            helper.make_tensor_value_info("values", TensorProto.FLOAT, [None, None, None]),
        ],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
        [big, one, axes],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _toy_feeds(pad_lift: float) -> dict:
    rng = np.random.default_rng(0)
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], np.int64)
    scores = rng.standard_normal((2, 5, 5)).astype(np.float32)
    scores[0, :, 3:] += pad_lift  # raw scores of the padded keys
    values = rng.standard_normal((2, 5, 4)).astype(np.float32) * 10
    return {"attention_mask": mask, "scores": scores, "values": values}


def test_refused_when_padded_scores_outrun_the_new_value():
    model = _toy_attention()
    ok, details = soften_padding_mask(model, [_toy_feeds(pad_lift=5.0)])
    assert details["padding_mask"] == MASK_VALUE
    # raw padded scores 80 above the real ones: exp(-50 + 80) would let padding through
    kept, details = soften_padding_mask(model, [_toy_feeds(pad_lift=80.0)])
    assert kept is model and details["padding_mask"].startswith("unchanged (outputs moved by")


def test_graph_without_a_mask_is_left_alone(digits_onnx):
    model = onnx.load(str(digits_onnx))
    same, details = soften_padding_mask(model, None)
    assert same is model and details["padding_mask"].startswith("unchanged (no ")


def test_exporter_softens_the_float_graph_every_variant_reads(tiny_bert_dir, tmp_path):
    from edgecompress.context import RunContext
    from edgecompress.data import load_sentences
    from edgecompress.exporters.onnx.exporter import OnnxConfig, export_onnx
    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    bundle = load_hf(tiny_bert_dir, task)
    ctx = RunContext(load_sentences(), tmp_path)
    base = {"quantize": ["none"], "exporter": "torchscript", "fuse_transformer": False}
    (fp32,) = export_onnx(bundle, OnnxConfig(**base), ctx, tmp_path / "on")
    assert fp32.details["padding_mask"] == MASK_VALUE and fp32.validation["passed"]
    assert mask_sites(onnx.load(str(fp32.path))) == []
    off = OnnxConfig(**base, padding_mask=False)
    (kept,) = export_onnx(bundle, off, RunContext(load_sentences(), tmp_path), tmp_path / "off")
    assert "padding_mask" not in kept.details and len(mask_sites(onnx.load(str(kept.path)))) == 1
