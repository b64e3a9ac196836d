"""A full-integer int8 TFLite model in a Lambda zip (ai-edge-litert, never tflite-runtime): the
handler quantizes float inputs and dequantizes int8 outputs with the file's scale / zero point."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edgecompress.awslambda.app import tflite_io
from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import TaskSpec
from tests.awslambda.lambda_models import tiny_int8_tflite

NAMES = IOSpec(
    [TensorSpec("image", "float32", ("batch", 8, 8, 1))],
    [TensorSpec("logits", "float32", ("batch", 10))],
)


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory) -> Path:
    return tiny_int8_tflite(tmp_path_factory.mktemp("tflite") / "digits.int8.tflite")


@pytest.fixture(scope="module")
def digits_nhwc() -> tuple[np.ndarray, np.ndarray]:
    from edgecompress.data import load_digits

    test = load_digits().test
    return test.x.transpose(0, 2, 3, 1)[:16], test.labels[:16]


@pytest.mark.slow
def test_int8_tflite_zip_runs_with_scale_and_zero_point(int8_tflite, digits_nhwc, tmp_path):
    x, labels = digits_nhwc
    io = tflite_io(int8_tflite, NAMES)
    assert io.inputs[0].dtype == "int8" and io.inputs[0].scale and io.outputs[0].scale
    built = build_lambda_zip(
        int8_tflite,
        io,
        TaskSpec(),
        tmp_path,
        LambdaTarget(arch="x86_64", python="3.11"),
        sample_feeds={"image": x},
    )
    assert built.runtime == "litert"
    assert built.versions == {"numpy": "2.2.6", "ai-edge-litert": "1.4.0"}
    check = built.self_check
    assert check["passed"] is True, check
    events = {e["event"]: e for e in check["events"]}
    for label in ("direct lists", "proxy base64 npy", "good after bad"):
        # host LiteRT 2.3 vs the zip's LiteRT 1.4, both int8: same dequantized logits
        assert events[label]["max_abs_diff"]["logits"] <= 1e-5, events[label]
    assert events["wrong dtype (npy)"]["status"] == 400
    got = np.array(check["answers"][0]["labels"])
    assert got.tolist() == _interpreter_labels(int8_tflite, x)  # int8 in, int8 out, by hand
    assert (got == labels).mean() >= 0.8  # a trained model: the zip classifies real digits
    with zipfile.ZipFile(built.path) as zf:
        names = zf.namelist()
        spec = json.loads(zf.read("io_spec.json"))
    assert not any(n.startswith(("onnxruntime/", "tflite_runtime/")) for n in names)
    assert spec["runtime"] == "litert" and spec["target"] == {"arch": "x86_64", "python": "3.11"}
    assert spec["inputs"][0]["zero_point"] == io.inputs[0].zero_point
    assert built.zipped_bytes < 30 * 1024 * 1024


def _interpreter_labels(model: Path, x: np.ndarray) -> list[int]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(model))
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], x.shape)
    interp.allocate_tensors()
    scale, zero = inp["quantization"]
    q = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    interp.set_tensor(inp["index"], q)
    interp.invoke()
    return np.argmax(interp.get_tensor(out["index"]), axis=1).tolist()


@pytest.mark.slow
def test_int8_tflite_arm64_py312_verified(int8_tflite, tmp_path):
    io = tflite_io(int8_tflite, NAMES)
    built = build_lambda_zip(
        int8_tflite, io, TaskSpec(), tmp_path, LambdaTarget(arch="arm64", python="3.12")
    )
    assert built.versions["ai-edge-litert"] == "2.3.0"
    verified = built.self_check["verified"]
    assert "another architecture" in built.self_check["skipped"]
    assert verified["elf"]["e_machine"] == 183 and verified["elf"]["files"] > 3
