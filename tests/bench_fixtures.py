"""Fixtures for the benchmark tests (imported by tests/benchmarks/conftest.py and
tests/test_cli_bench.py): the trained digits CNN exported with plain
torch.onnx.export, an int8 variant, a Lambda-style zip whose handler uses the host's
onnxruntime, and one small real benchmark run shared by the report / gates / CLI tests."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

HANDLER = """\
import json
import os
import time

_t0 = time.perf_counter()
import numpy as np
import onnxruntime as ort

_t1 = time.perf_counter()
SESSION = ort.InferenceSession(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "model.onnx"),
    providers=["CPUExecutionProvider"],
)
_t2 = time.perf_counter()
INIT_TIMINGS = {"import_ms": (_t1 - _t0) * 1000.0, "load_ms": (_t2 - _t1) * 1000.0}


def handler(event, context):
    feeds = {k: np.asarray(v, dtype=np.float32) for k, v in event["inputs"].items()}
    logits = SESSION.run(None, feeds)[0]
    return {"statusCode": 200, "body": json.dumps({"label": logits.argmax(1).tolist()})}
"""


@pytest.fixture(scope="session")
def bench_bundle():
    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    return load_factory(
        "edgecompress.zoo:digits_cnn", "package://edgecompress.zoo/digits_cnn.pt", TaskSpec()
    )


@pytest.fixture(scope="session")
def bench_data():
    from edgecompress.data import load_digits

    return load_digits()


@pytest.fixture(scope="session")
def bench_onnx(bench_bundle, tmp_path_factory) -> Path:
    import torch

    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    name = bench_bundle.io.input_names[0]
    example = torch.from_numpy(bench_bundle.example_inputs[name])
    torch.onnx.export(
        bench_bundle.module,
        (example,),
        str(path),
        input_names=bench_bundle.io.input_names,
        output_names=bench_bundle.io.output_names,
        dynamic_axes=bench_bundle.io.dynamic_axes(),
        dynamo=False,
    )
    return path


@pytest.fixture(scope="session")
def bench_onnx_int8(bench_onnx) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = bench_onnx.with_name("model.int8.onnx")
    quantize_dynamic(str(bench_onnx), str(path), weight_type=QuantType.QInt8)
    return path


def make_zip(path: Path, model: Path, handler: str = HANDLER, event: dict | None = None):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("handler.py", handler)
        zf.write(model, "model.onnx")
        if event is not None:
            zf.writestr("sample_event.json", json.dumps(event))
    return path


@pytest.fixture(scope="session")
def bench_zip(bench_onnx, tmp_path_factory) -> Path:
    return make_zip(tmp_path_factory.mktemp("zip") / "lambda-x86_64-py.zip", bench_onnx)


def _exported(name, path, bundle, ctx):
    from edgecompress.exporters.base import ExportedModel
    from edgecompress.runtimes import OnnxRunner

    metric, _ = ctx.evaluate_runner(OnnxRunner(path, 1, bundle.io), bundle)
    base = ctx.baseline["value"]
    validation = {
        "metric": {
            "metric": metric["metric"],
            "value": metric["value"],
            "baseline": base,
            "delta": metric["value"] - base,
        }
    }
    return ExportedModel(name, "onnx", path, name.split("-", 1)[1], bundle.io, validation)


_RUN_CACHE: dict = {}


@pytest.fixture(scope="session")
def digits_run(bench_bundle, bench_data, bench_onnx, bench_onnx_int8, bench_zip, tmp_path_factory):
    """One real benchmark_and_report run over the digits CNN: torch-fp32 baseline, ONNX fp32
    (with a Lambda-style zip) and ONNX int8-dynamic. Run once per session, even when this
    fixture is imported into several test folders."""
    if "run" not in _RUN_CACHE:
        _RUN_CACHE["run"] = _digits_run(
            bench_bundle, bench_data, bench_onnx, bench_onnx_int8, bench_zip, tmp_path_factory
        )
    return _RUN_CACHE["run"]


def _digits_run(bench_bundle, bench_data, bench_onnx, bench_onnx_int8, bench_zip, tmp_path_factory):
    import platform
    import sys

    from edgecompress.context import RunContext
    from edgecompress.measure.memory import zip_sizes
    from edgecompress.recipe import parse_recipe
    from edgecompress.report.build import benchmark_and_report

    work = tmp_path_factory.mktemp("run")
    recipe = parse_recipe(
        {
            "name": "digits-bench",
            "model": {"factory": "edgecompress.zoo:digits_cnn"},
            "bench": {"runs": 60, "warmup": 5, "threads": [1, 2], "cold_start_runs": 2},
            "package": {
                "lambda": {"arch": ["arm64", "x86_64"], "memory_mb": [512, 1024, 1769, 2048, 3008]}
            },
            "gates": {"max_accuracy_drop": 0.01, "max_zip_mib": 50},
        },
        "test-recipe",
    )
    ctx = RunContext(bench_data, work)
    ctx.set_baseline(bench_bundle)
    variants = [
        _exported("onnx-fp32", bench_onnx, bench_bundle, ctx),
        _exported("onnx-int8-dynamic", bench_onnx_int8, bench_bundle, ctx),
    ]
    arch = "arm64" if platform.machine() in ("aarch64", "arm64") else "x86_64"
    zips = [
        {
            "path": bench_zip,
            **zip_sizes(bench_zip),
            "arch": arch,
            "variant": "onnx-fp32",
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        }
    ]
    result = benchmark_and_report(
        recipe, bench_bundle, ctx, work, variants, zips, original=bench_bundle
    )
    return {"work": work, "result": result, "recipe": recipe}
