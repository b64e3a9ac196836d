"""ONNX -> skeleton + coded weights -> bytes onnxruntime runs; a compressed-storage Lambda zip
of the digits model that answers its self-check."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.compressors.cluster import ClusterConfig, cluster
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskSpec
from edgecompress.storage import encode
from edgecompress.storage import format as fmt
from tests.awslambda.lambda_models import digits_int8_onnx


def _initializers(model) -> dict[str, bytes]:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i).tobytes() for i in model.graph.initializer}


def _export(module, path: Path) -> Path:
    import torch

    torch.onnx.export(
        module.eval(), (torch.zeros(1, 1, 8, 8),), str(path), input_names=["image"],
        output_names=["logits"], dynamic_axes={"image": {0: "batch"}}, dynamo=False,
        do_constant_folding=False,  # keep BatchNorm apart: folded into Conv it unshares weights
    )  # fmt: skip
    return path


def test_clustered_model_decodes_bit_identical_and_runs(digits_bundle, run_ctx, tmp_path):
    import onnx
    import onnxruntime as ort

    clustered, stats = cluster(digits_bundle, ClusterConfig(conv_bits=5, linear_bits=4), run_ctx)
    path = _export(clustered.module, tmp_path / "clustered.onnx")
    encoded = encode.encode_onnx(path)
    layouts = {t.name: t.layout for t in encoded.tensors}
    shared = [f"{n}.weight" for n in stats["bits"]]
    assert all(layouts[n] in ("dense", "sparse") for n in shared), layouts
    shared_bytes = sum(t.nbytes for t in encoded.tensors if t.name in shared)
    assert shared_bytes < sum(t.streams["indices"].raw_length for t in encoded.tensors
                              if t.name in shared) * 5 / 8  # fmt: skip
    rebuilt = encode.rebuild(encoded.skeleton, encoded.weights)
    assert _initializers(onnx.load_from_string(rebuilt)) == _initializers(onnx.load(str(path)))
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    want = ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    got = ort.InferenceSession(rebuilt).run(None, {"image": x})[0]
    assert np.array_equal(want, got)
    with pytest.raises(fmt.StorageError, match="truncated"):
        encode.rebuild(encoded.skeleton, encoded.weights[:-1])


@pytest.mark.slow
def test_compressed_storage_zip_answers_its_self_check(tmp_path):
    model = digits_int8_onnx(tmp_path)
    io = load_onnx(model, TaskSpec()).io
    options = LambdaTarget(arch="x86_64", python="3.11", storage="compressed")
    built = build_lambda_zip(model, io, TaskSpec(), tmp_path / "out", options)
    with zipfile.ZipFile(built.path) as zf:
        names = set(zf.namelist())
        spec = json.loads(zf.read("io_spec.json"))
        decoder_src = zf.read("decoder.py").decode()
    assert {"decoder.py", encode.SKELETON_FILE, encode.WEIGHTS_FILE} <= names
    assert "model.onnx" not in names
    assert spec["storage"]["weights"] == encode.WEIGHTS_FILE and spec["model_file"] == "model.ecw"
    assert "edgecompress" not in decoder_src.replace("edgecompress coded weights", "")
    if "skipped" in built.self_check:
        pytest.skip(built.self_check["skipped"])
    assert built.self_check["passed"] is True, built.self_check
    events = {e["event"]: e for e in built.self_check["events"]}
    assert events["direct lists"]["max_abs_diff"]["logits"] <= 1e-5


def test_per_channel_codebooks_store_as_columns_and_rows(tmp_path):
    """int8 MatMul weights with per-column levels (codebook GPTQ) and an embedding table with
    per-row levels: "columns" / "rows" layouts, exact, and the model runs the same."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgecompress.compressors.codebook_gptq import codebook_gptq, row_codebooks, snap_rows

    rng = np.random.default_rng(0)
    weight, _ = codebook_gptq(rng.normal(size=(256, 192)).astype(np.float32), np.eye(256), 16)
    raw = rng.integers(-127, 127, (512, 192), endpoint=True).astype(np.int8)
    table, _ = snap_rows(raw, row_codebooks(raw, 8))
    graph = helper.make_graph(
        [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
         helper.make_node("MatMul", ["x", "wf"], ["y"]),
         helper.make_node("Gather", ["table", "ids"], ["rows"]),
         helper.make_node("Cast", ["rows"], ["e"], to=TensorProto.FLOAT)],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 256]),
         helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 192]),
         helper.make_tensor_value_info("e", TensorProto.FLOAT, [None, 192])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(table, "table")],
    )  # fmt: skip
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    encoded = encode.encode_onnx(path)
    assert {t.name: t.layout for t in encoded.tensors} == {"w": "columns", "table": "rows"}
    assert encoded.summary()["layouts"]["columns"] == 1
    # 4-bit (16 levels) and 3-bit (8 levels) indices, entropy coded, plus the books
    assert len(encoded.weights) < (weight.size * 4 + table.size * 3) / 8 + 192 * 16 + 512 * 8
    rebuilt = encode.rebuild(encoded.skeleton, encoded.weights)
    assert _initializers(onnx.load_from_string(rebuilt)) == _initializers(onnx.load(str(path)))
    feeds = {"x": rng.random((3, 256), dtype=np.float32), "ids": np.array([0, 7, 511])}
    want = ort.InferenceSession(str(path)).run(None, feeds)
    got = ort.InferenceSession(rebuilt).run(None, feeds)
    assert all(np.array_equal(a, b) for a, b in zip(want, got, strict=True))
