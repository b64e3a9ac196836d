"""The generated Lambda handler against hostile events: a 200 with valid outputs or a 400 with a
message, never a 500, never bare NaN (hypothesis throws thousands of random events at it)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import math
import shutil

import numpy as np
import onnxruntime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecompress.awslambda import app as lambda_app
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskSpec
from tests.awslambda.lambda_models import digits_int8_onnx

SHAPE = (1, 8, 8)  # the digits CNN's image, after the batch dim


def load_handler(folder, name: str, **spec_changes):
    spec = json.loads((folder / "io_spec.json").read_text())
    spec.update(spec_changes)
    (folder / "io_spec.json").write_text(json.dumps(spec))
    module_spec = importlib.util.spec_from_file_location(name, folder / "handler.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("handler")
    model = digits_int8_onnx(folder)
    stage = folder / "stage"
    stage.mkdir()
    shutil.copyfile(model, stage / "model.onnx")
    pins = {"onnxruntime": onnxruntime.__version__}
    io_spec = load_onnx(model, TaskSpec()).io
    lambda_app.write_app(stage, model, io_spec, TaskSpec(), "onnxruntime", None, 64, pins)
    return stage


@pytest.fixture(scope="module")
def handler(app_dir):
    return load_handler(app_dir, "handler_strict").handler


def status_and_body(answer) -> tuple[int, dict]:
    """(status, payload) of a direct answer (the payload itself) or a proxy one."""
    assert isinstance(answer, dict)
    if "statusCode" in answer:
        return answer["statusCode"], json.loads(answer["body"])
    return 200, answer


def check(answer) -> int:
    text = json.dumps(answer, allow_nan=False)  # strict JSON, whatever the input was
    status, body = status_and_body(json.loads(text))
    assert status in (200, 400), body
    if status == 400:
        assert isinstance(body["error"], str) and body["error"]
    else:
        outputs = body["outputs"]["logits"]
        assert len(body["labels"]) == len(outputs)
        for row in outputs:
            assert len(row) == 10 and all(v is None or math.isfinite(v) for v in row)
    return status


def image(value: float = 0.5, batch: int = 1) -> list:
    return np.full((batch, *SHAPE), value).tolist()


def test_valid_event_answers_labels(handler):
    assert check(handler({"inputs": {"image": image()}}, None)) == 200
    proxy = handler({"body": json.dumps({"inputs": {"image": image(batch=3)}})}, None)
    assert check(proxy) == 200 and len(json.loads(proxy["body"])["labels"]) == 3


def nested(depth: int):
    value: list | float = 0.0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", [5, 50, 999, 5000])
def test_deep_nesting_is_a_400_naming_it(handler, depth):
    answer = handler({"inputs": {"image": nested(depth)}}, None)
    status, body = status_and_body(answer)
    assert status == 400 and "nested deeper than its 4 dims" in body["error"]


def test_deep_proxy_body_is_a_400(handler):
    body = "[" * 100_000 + "]" * 100_000
    status, payload = status_and_body(handler({"body": body}, None))
    assert status == 400 and "nested too deeply" in payload["error"]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 1e39])
def test_non_finite_inputs_are_refused(handler, value):
    status, body = status_and_body(handler({"inputs": {"image": image(value)}}, None))
    assert status == 400 and "NaN or infinite" in body["error"]
    proxy = {"body": json.dumps({"inputs": {"image": image(value)}})}  # Python writes NaN
    status, body = status_and_body(handler(proxy, None))
    assert status == 400 and "NaN or infinite" in body["error"]


def test_non_finite_npy_is_refused(handler):
    buffer = io.BytesIO()
    np.save(buffer, np.full((1, *SHAPE), np.nan, dtype=np.float32))
    npy = base64.b64encode(buffer.getvalue()).decode()
    status, body = status_and_body(handler({"inputs": {"image": {"npy": npy}}}, None))
    assert status == 400 and "NaN" in body["error"]


def test_allow_non_finite_opts_in_and_answers_strict_json(app_dir, tmp_path):
    folder = tmp_path / "app"
    shutil.copytree(app_dir, folder)
    lenient = load_handler(folder, "handler_lenient", allow_non_finite=True).handler
    answer = lenient({"body": json.dumps({"inputs": {"image": image(math.nan)}})}, None)
    assert check(answer) == 200
    assert None in json.loads(answer["body"])["outputs"]["logits"][0]  # NaN logits -> null


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=40,
)
pixel = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
near_images = st.lists(
    st.lists(st.lists(st.lists(pixel, min_size=8, max_size=8), min_size=7, max_size=9),
             min_size=1, max_size=2),
    min_size=0, max_size=3,
)  # fmt: skip
requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {"inputs": st.dictionaries(st.sampled_from(["image", "x"]), json_values)}
    ),
    st.fixed_dictionaries({"inputs": st.fixed_dictionaries({"image": near_images})}),
    st.fixed_dictionaries({"texts": json_values}),
)


def as_event(request, how: str):
    if how == "direct":
        return request
    body = json.dumps(request)
    if how == "base64":
        return {"body": base64.b64encode(body.encode()).decode(), "isBase64Encoded": True}
    return {"body": body}


@settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=requests, how=st.sampled_from(["direct", "proxy", "base64"]))
def test_random_events_get_200_or_400_never_500(handler, request, how):
    check(handler(as_event(request, how), None))
