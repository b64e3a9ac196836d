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
