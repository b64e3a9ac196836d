"""build_lambda_zip: reproducible bytes, cold start, MiniLM int8 for arm64 / py3.12 in budget."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from bench_helpers import minilm_int8_onnx

from edgecompress.awslambda.bundle import build_lambda_zip, measure_cold_start
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskKind, TaskSpec
from tests.awslambda.lambda_models import digits_int8_onnx

MIB = 1024 * 1024
HOST_311 = LambdaTarget(arch="x86_64", python="3.11")
HOST_311_UNCHECKED = LambdaTarget(arch="x86_64", python="3.11", self_check=False)
ARM_312 = LambdaTarget(arch="arm64", python="3.12")


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory) -> Path:
    return digits_int8_onnx(tmp_path_factory.mktemp("digits"))


def test_same_inputs_give_byte_identical_zip(digits_onnx, tmp_path):
    io = load_onnx(digits_onnx, TaskSpec()).io
    # x86_64 / 3.11 = the host: the zip includes stripped .so files and .pyc (unchecked-hash)
    first, second = (
        build_lambda_zip(digits_onnx, io, TaskSpec(), tmp_path / name, HOST_311_UNCHECKED)
        for name in ("a", "b")
    )
    assert first.sha256 == second.sha256
    assert first.path.read_bytes() == second.path.read_bytes()
    assert first.pyc["compiled"] and first.pyc["files"] > 100
    with zipfile.ZipFile(first.path) as zf:
        names = zf.namelist()
        pyc = zf.read("__pycache__/handler.cpython-311.pyc")
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
    assert any(n.startswith("numpy/") and n.endswith(".cpython-311.pyc") for n in names)
    assert first.stripped["stripped"]  # host-arch ELF files were stripped
    assert first.self_check["skipped"] == "self_check=False"


def test_measure_cold_start_fresh_processes(digits_onnx, tmp_path):
    io = load_onnx(digits_onnx, TaskSpec()).io
    built = build_lambda_zip(digits_onnx, io, TaskSpec(), tmp_path, HOST_311_UNCHECKED)
    cold = measure_cold_start(built.path, runs=3)
    assert cold["runs"] == 3 and len(cold["samples"]) == 3
    for key in ("import_ms", "load_ms", "first_inference_ms", "total_ms"):
        assert cold[key] > 0, cold
    assert cold["total_ms"] > cold["load_ms"]  # process start -> first answer includes the load


@pytest.mark.slow
def test_minilm_int8_arm64_py312_fits_50_mib(tmp_path):
    model, tokenizer_dir, bundle = minilm_int8_onnx(tmp_path)
    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    built = build_lambda_zip(
        model, bundle.io, task, tmp_path / "arm", ARM_312, tokenizer_dir=tokenizer_dir
    )
    assert built.zipped_bytes < 50 * MIB and built.unzipped_bytes < 250 * MIB
    assert {"model", "onnxruntime", "numpy", "tokenizers", "tokenizer", "handler"} <= set(
        built.breakdown
    )
    assert built.breakdown["model"]["unzipped"] == model.stat().st_size
    assert built.self_check["verified"]["elf"]["e_machine"] == 183
    spec = json.loads(zipfile.ZipFile(built.path).read("io_spec.json"))
    assert spec["text"]["tokenizer_file"] == "tokenizer.json" and spec["task"] == "embedding"
    # the same text model on the host target runs under awslambdaric (tokenizers + ORT 1.16)
    host = build_lambda_zip(
        model, bundle.io, task, tmp_path / "host", HOST_311, tokenizer_dir=tokenizer_dir
    )
    events = {e["event"]: e for e in host.self_check["events"]}
    assert events["direct texts"]["min_cosine"]["sentence_embedding"] >= 0.999
    assert events["10 MB body"]["status"] == 400


@pytest.mark.slow
def test_py312_zip_self_checked_under_a_312_interpreter(digits_onnx, tmp_path):
    from edgecompress.awslambda.target import interpreter_for

    interpreter = interpreter_for("x86_64", "3.12")
    if interpreter is None:
        pytest.skip("no Python 3.12 on this host (PATH, pyenv)")
    io = load_onnx(digits_onnx, TaskSpec()).io
    built = build_lambda_zip(
        digits_onnx, io, TaskSpec(), tmp_path, LambdaTarget(arch="x86_64", python="3.12")
    )
    check = built.self_check
    assert check["passed"] is True and check["interpreter"] == interpreter
    assert built.versions == {"numpy": "2.5.5", "onnxruntime": "1.32.0"}
    assert built.pyc["compiled"] and built.pyc["interpreter"] == interpreter
    with zipfile.ZipFile(built.path) as zf:
        names = zf.namelist()
        pyc = zf.read("__pycache__/handler.cpython-312.pyc")
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # hash-based, unchecked
    assert not any(n.endswith(".cpython-311.pyc") for n in names)
    events = {e["event"]: e for e in check["events"]}
    assert events["direct lists"]["max_abs_diff"]["logits"] <= 1e-4
    cold = measure_cold_start(built.path, runs=2)  # picks the 3.12 interpreter from io_spec
    assert cold["runs"] == 2 and cold["total_ms"] > cold["load_ms"] > 0
