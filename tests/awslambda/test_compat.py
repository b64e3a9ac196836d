"""Models from the real exporters in py3.11 zips (onnxruntime 1.16.3): the model copy is
rewritten to what 1.16.3 loads (unused domain imports dropped, IR / opset lowered where the ops
allow it), every change recorded, and the zip self-checked under awslambdaric."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edgecompress.awslambda import onnx_compat as lambda_onnx_compat
from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.onnx_compat import adapt_model
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.errors import ExportError
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import TaskSpec
from tests.awslambda import lambda_models

IO = IOSpec(
    [TensorSpec("image", "float32", ("batch", 1, 8, 8))],
    [TensorSpec("logits", "float32", ("batch", 10))],
)


def _model(op: str, opset: int, extra_imports=(), ir: int = 10, **attrs) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g", [x], [y])
    imports = [helper.make_opsetid("", opset)] + [
        helper.make_opsetid(d, v) for d, v in extra_imports
    ]
    return helper.make_model(graph, opset_imports=imports, ir_version=ir)


def _adapt(tmp_path, proto, ort="1.16.3") -> tuple[list[str], onnx.ModelProto]:
    src, dst = tmp_path / "m.onnx", tmp_path / "out.onnx"
    onnx.save(proto, str(src))
    changes = adapt_model(src, dst, ort)
    return changes, onnx.load(str(dst))


def test_unused_domains_dropped_ir_and_opset_lowered(tmp_path):
    proto = _model("Relu", 21, [("ai.onnx.ml", 5), ("com.microsoft", 1)])
    changes, out = _adapt(tmp_path, proto)
    assert changes == [
        "dropped opset imports no node uses: ai.onnx.ml 5, com.microsoft 1",
        "ai.onnx opset 21 -> 19 for onnxruntime 1.16.3 (ops Relu have the same signature "
        "at opset 19)",
        "ONNX IR version 10 -> 9 for onnxruntime 1.16.3",
    ]
    assert [(o.domain, o.version) for o in out.opset_import] == [("", 19)] and out.ir_version == 9
    # a newer onnxruntime gets the file unchanged, byte for byte
    assert adapt_model(tmp_path / "m.onnx", tmp_path / "same.onnx", "1.32.0") == []
    assert (tmp_path / "same.onnx").read_bytes() == (tmp_path / "m.onnx").read_bytes()


def test_op_missing_at_older_opset_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError) as info:
        _adapt(tmp_path, _model("Gelu", 20))
    msg = str(info.value)
    assert "Gelu does not exist before opset 20" in msg
    assert "onnxruntime 1.16.3" in msg and "python 3.12" in msg
    assert not (tmp_path / "out.onnx").exists()


def test_lowered_model_is_type_checked_at_the_lower_opset(tmp_path):
    # Reshape-21 only widened its types (int4): lowering is refused when the model uses int4
    x = helper.make_tensor_value_info("x", TensorProto.INT4, [2, 4])
    shape = helper.make_tensor_value_info("s", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.INT4, [8])
    node = helper.make_node("Reshape", ["x", "s"], ["y"])
    graph = helper.make_graph([node], "g", [x, shape], [y])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    with pytest.raises(ExportError, match=r"type-check.*tensor\(int4\).*python 3.12"):
        _adapt(tmp_path, proto)


def test_conv_integer_with_int8_weights_refused_for_ort_116(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 2, 2, 2])
    w = helper.make_tensor("w", TensorProto.INT8, [2, 1, 3, 3], [1] * 18)
    node = helper.make_node("ConvInteger", ["x", "w"], ["y"], name="conv0")
    graph = helper.make_graph([node], "g", [x], [y], initializer=[w])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    with pytest.raises(ExportError, match=r"no ConvInteger kernel for int8 weights \(node conv0\)"):
        _adapt(tmp_path, proto)
    assert _adapt(tmp_path, proto, ort="1.32.0")[0] == []  # the 3.12+ runtime has the kernel


def test_op_with_changed_signature_is_not_lowered(tmp_path, monkeypatch):
    # An onnxruntime that ran opset <= 17 could not take ReduceMean-18 (axes became an input).
    monkeypatch.setitem(lambda_onnx_compat.ORT_LIMITS, "0.test", {"ir": 8, "opsets": {"": 17}})
    with pytest.raises(ExportError, match=r"ReduceMean changed at opset 18 .*axes"):
        _adapt(tmp_path, _model("ReduceMean", 18, keepdims=1), ort="0.test")
    changes, out = _adapt(tmp_path, _model("Relu", 18), ort="0.test")  # Relu is the same at 17
    assert out.opset_import[0].version == 17 and len(changes) == 2


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("exported")
    dynamo = lambda_models.digits_torch_onnx(folder / "dynamo.onnx", dynamo=True, opset=18)
    return {
        "dynamo": dynamo,
        "dynamo+ort": lambda_models.ort_optimized(dynamo, folder / "dynamo.ort.onnx"),
    }


def _digits_feeds(n: int = 8) -> dict[str, np.ndarray]:
    from edgecompress.data import load_digits

    return {"image": load_digits().test.x[:n]}


def _package(model: Path, out: Path):
    built = build_lambda_zip(
        model,
        IO,
        TaskSpec(),
        out,
        LambdaTarget(arch="x86_64", python="3.11"),
        sample_feeds=_digits_feeds(),
    )
    check = built.self_check
    assert check["passed"] is True and built.versions["onnxruntime"] == "1.16.3"
    for event in check["events"]:
        assert event["passed"], event
    return built


@pytest.mark.slow
def test_dynamo_opset18_with_ort_optimisation_runs_on_ort_116(exported, tmp_path):
    src = onnx.load(str(exported["dynamo+ort"]))
    assert src.ir_version == 10 and ("ai.onnx.ml", 5) in [
        (o.domain, o.version) for o in src.opset_import
    ]  # what 1.16.3 refuses as exported
    built = _package(exported["dynamo+ort"], tmp_path)
    assert built.model_changes[0].startswith("dropped opset imports no node uses: ai.onnx.ml 5")
    assert built.model_changes[-1] == "ONNX IR version 10 -> 9 for onnxruntime 1.16.3"
    events = {e["event"]: e for e in built.self_check["events"]}
    assert events["direct lists"]["max_abs_diff"]["logits"] <= 1e-4
    model = onnx.load_from_string(zipfile.ZipFile(built.path).read("model.onnx"))
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 18)]
    assert model.ir_version == 9


@pytest.mark.slow
def test_torchscript_opset18_runs_on_ort_116(tmp_path):
    model = lambda_models.digits_torch_onnx(tmp_path / "ts.onnx", dynamo=False, opset=18)
    built = _package(model, tmp_path / "out")
    assert built.model_changes == []  # IR 8 / opset 18: 1.16.3 loads it as exported
    events = {e["event"]: e for e in built.self_check["events"]}
    assert events["proxy base64 npy"]["max_abs_diff"]["logits"] <= 1e-4


@pytest.mark.slow
def test_qdq_int8_static_per_channel_runs_on_ort_116(exported, tmp_path):
    qdq = lambda_models.digits_qdq_int8(exported["dynamo+ort"], tmp_path / "qdq.onnx")
    ops = {n.op_type for n in onnx.load(str(qdq)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    built = _package(qdq, tmp_path / "out")
    assert "ONNX IR version 10 -> 9 for onnxruntime 1.16.3" in built.model_changes
    events = {e["event"]: e for e in built.self_check["events"]}
    # onnxruntime 1.16.3 in the zip vs 1.32 on the host, same int8 graph, real digits inputs
    assert events["direct lists"]["min_cosine"]["logits"] >= 0.999
    assert built.self_check["answers"][0]["labels"] == _host_labels(qdq)


def _host_labels(model: Path) -> list[int]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.argmax(session.run(None, _digits_feeds())[0], axis=1).tolist()
