"""ONNX exporter: real onnxruntime sessions on the trained digits CNN and BERT encoders."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgecompress.context import RunContext
from edgecompress.data import load_sentences
from edgecompress.errors import ExportError, ValidationError
from edgecompress.exporters.onnx.exporter import OnnxConfig, export_onnx
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.loaders import load_hf
from edgecompress.model import ModelBundle, TaskKind, TaskSpec, example_inputs_for
from edgecompress.quantspec import QuantScheme, QuantSpec
from edgecompress.runtimes import OnnxRunner, torch_run

EMBEDDING = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")


def _by_name(variants):
    return {v.name: v for v in variants}


def test_digits_fp32_and_int8_static(digits_bundle, run_ctx, tmp_path):
    out = tmp_path / "out"
    config = OnnxConfig(quantize=["none", "int8-static"])
    made = _by_name(export_onnx(digits_bundle, config, run_ctx, out))

    fp32, int8 = made["onnx-fp32"], made["onnx-int8-static"]
    assert fp32.path == out / "model.onnx" and int8.path == out / "model.int8.onnx"
    assert sorted(p.name for p in out.iterdir()) == ["model.int8.onnx", "model.onnx"]
    assert fp32.validation["max_abs_diff"] <= 1e-4 and fp32.validation["passed"]
    baseline = run_ctx.baseline["value"]
    assert baseline > 0.98
    assert int8.validation["metric"]["value"] >= baseline - 0.01
    assert fp32.size_bytes / int8.size_bytes >= 3.5, (fp32.size_bytes, int8.size_bytes)
    # dynamic batch axis named as in the IO spec, and a real session agrees with torch
    model = onnx.load(str(fp32.path))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert model.opset_import[0].version >= 17
    x = run_ctx.eval_split.x[:5]
    got = OnnxRunner(fp32.path, io=digits_bundle.io).run({"image": x})["logits"]
    np.testing.assert_allclose(got, torch_run(digits_bundle)({"image": x})["logits"], atol=1e-4)
    assert int8.details["quant_format"] == "QOperator" and int8.details["reduce_range"]
    assert fp32.details["exporter"] in ("dynamo", "torchscript")


def test_static_qdq_and_spec_default(digits_bundle, run_ctx, tmp_path):
    """Without 'quantize' the bundle's QuantSpec picks the variant; QDQ is one option away."""
    spec = QuantSpec(QuantScheme.int8_static, calibration_samples=64, keep_float=["classifier.3"])
    bundle = digits_bundle.replace(quant_spec=spec, float_module=digits_bundle.module)
    made = _by_name(export_onnx(bundle, OnnxConfig(static_format="qdq"), run_ctx, tmp_path))
    int8 = made["onnx-int8-static"]
    assert set(made) == {"onnx-fp32", "onnx-int8-static"}
    assert int8.details["quant_format"] == "QDQ"
    assert int8.details["calibration"]["samples"] == 64
    assert len(int8.details["nodes_excluded"]) == 1  # the last Gemm stays float
    assert int8.validation["metric"]["value"] >= run_ctx.baseline["value"] - 0.01
    ops = {n.op_type for n in onnx.load(str(int8.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Gemm"} <= ops


def _svd_bundle():
    import torch
    from torch import nn

    class SVDBlock(nn.Module):
        def forward(self, x):
            return torch.linalg.svd(x.reshape(-1, 8, 8))[1]

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = SVDBlock()
            self.head = nn.Linear(8, 10)

        def forward(self, image):
            return self.head(self.block(image))

    inputs = [TensorSpec("image", "float32", ("batch", 1, 8, 8))]
    io = IOSpec(inputs, [TensorSpec("logits", "float32", ("batch", 10))])
    return ModelBundle(Net().eval(), io, example_inputs_for(inputs), TaskSpec())


def test_unsupported_op_is_named_and_leaves_nothing(digits_data, tmp_path):
    bundle = _svd_bundle()
    ctx = RunContext(digits_data, tmp_path)
    out = tmp_path / "out"
    with pytest.raises(ExportError) as err:
        export_onnx(bundle, OnnxConfig(), ctx, out)
    message = str(err.value)
    assert "linalg_svd" in message and "block" in message and "SVDBlock" in message
    assert list(out.iterdir()) == []


def test_impossible_tolerance_raises_with_numbers(digits_bundle, run_ctx, tmp_path):
    config = OnnxConfig(tolerance={"fp32_max_abs_diff": 0.0})
    with pytest.raises(ValidationError, match=r"max_abs_diff \S+ > allowed 0"):
        export_onnx(digits_bundle, config, run_ctx, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_config_round_trips_and_validates():
    config = OnnxConfig(quantize=["none", "int4-weight-only"], opset=17)
    assert OnnxConfig.from_json(config.to_json()) == config
    with pytest.raises(Exception, match="greater than or equal to 17"):
        OnnxConfig(opset=13)


@pytest.fixture(scope="module")
def sentences():
    return load_sentences()


def test_tiny_bert_fused_and_int8_dynamic(tiny_bert_dir, sentences, tmp_path):
    bundle = load_hf(tiny_bert_dir, EMBEDDING)
    ctx = RunContext(sentences, tmp_path)
    made = _by_name(
        export_onnx(bundle, OnnxConfig(quantize=["none", "int8-dynamic"]), ctx, tmp_path / "out")
    )
    fp32, int8 = made["onnx-fp32"], made["onnx-int8-dynamic"]
    counts = fp32.details["fused_ops"]
    assert counts.get("Attention", 0) + counts.get("MultiHeadAttention", 0) > 0
    assert fp32.validation["max_abs_diff"] <= 1e-4
    assert int8.validation["samples"] >= 300
    assert int8.validation["cosine"] >= 0.99
    assert "optimum" in fp32.details["hf_export"]
    dims = onnx.load(str(fp32.path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "sequence"]


def test_tiny_bert_int4_quantizes_embeddings(tiny_bert_dir, sentences, tmp_path):
    bundle = load_hf(tiny_bert_dir, EMBEDDING)
    ctx = RunContext(sentences, tmp_path)
    config = OnnxConfig(
        quantize=["none", "int4-weight-only"], group_size=32, int4_keep_8bit=["*.value"]
    )
    made = _by_name(export_onnx(bundle, config, ctx, tmp_path / "out"))
    fp32, int4 = made["onnx-fp32"], made["onnx-int4-weight-only"]
    details = int4.details
    assert details["matmulnbits_nodes"] == 36 and details["gather_block_quantized"] == 3
    assert len(details["matmulnbits_8bit"]) == 6 and all(
        "value" in n for n in details["matmulnbits_8bit"]
    )
    assert details["accuracy_level"] == 4 and details["opset"] == 21
    model = onnx.load(str(int4.path))
    gathers = [n for n in model.graph.node if n.op_type == "GatherBlockQuantized"]
    assert {a.name: a.i for a in gathers[0].attribute}["block_size"] == 32
    bits = sorted(
        {
            a.i
            for n in model.graph.node
            if n.op_type == "MatMulNBits"
            for a in n.attribute
            if a.name == "bits"
        }
    )
    assert bits == [4, 8]
    assert int4.validation["samples"] == 514 and int4.validation["cosine"] >= 0.99
    assert int4.size_bytes < fp32.size_bytes / 2.5  # the embedding tables are half the floats


@pytest.mark.slow
def test_minilm_int8_and_int4(minilm_dir, sentences, tmp_path):
    bundle = load_hf(minilm_dir, EMBEDDING)
    ctx = RunContext(sentences, tmp_path)
    config = OnnxConfig(
        quantize=["none", "int8-dynamic", "int4-weight-only"],
        group_size=32,
        symmetric=False,
        int4_keep_8bit=["*.value", "*.intermediate.dense"],  # the two most sensitive MatMuls
    )
    made = _by_name(export_onnx(bundle, config, ctx, tmp_path / "out"))
    fp32, int8, int4 = made["onnx-fp32"], made["onnx-int8-dynamic"], made["onnx-int4-weight-only"]
    assert fp32.details["fused_ops"]["Attention"] == 6
    assert int8.validation["samples"] >= 300 and int8.validation["cosine"] >= 0.99
    assert int8.size_bytes < fp32.size_bytes / 3.5
    # int4: 6 layers x (Q, K, V, O, FF1, FF2) MatMulNBits, V and FF1 at 8 bits, and the three
    # embedding tables (47 MB of float word embeddings) as GatherBlockQuantized
    details = int4.details
    assert details["matmulnbits_nodes"] == 36 and len(details["matmulnbits_8bit"]) == 12
    assert details["gather_block_quantized"] == 3 and details["accuracy_level"] == 4
    assert "EmbedLayerNormalization" not in details["fused_ops"]
    ops = {n.op_type for n in onnx.load(str(int4.path)).graph.node}
    assert {"MatMulNBits", "GatherBlockQuantized"} <= ops and "EmbedLayerNormalization" not in ops
    assert int4.validation["samples"] == 514 and int4.validation["passed"]
    assert int4.validation["cosine"] >= 0.985 and int4.validation["min_cosine"] >= 0.96
    assert int4.size_bytes < fp32.size_bytes / 5  # 16.9 MB of 90.3 MB measured (54.5 MB before)
    print({v.name: (v.size_bytes, round(v.validation["cosine"], 4)) for v in made.values()})
