"""Image classifiers from a local transformers folder: inspect, ONNX export (float and int8)
validated against torch, and a Lambda zip that answers base64 PNG / JPEG requests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.exporters.onnx import metadata as onnx_metadata
from edgecompress.hf.family import Family
from edgecompress.loaders import load_hf
from edgecompress.model import TaskSpec


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result


@pytest.mark.parametrize(
    ("name", "arch"),
    [
        ("vit", "ViTForImageClassification"),
        ("resnet", "ResNetForImageClassification"),
        ("convnext", "ConvNextForImageClassification"),
    ],
)
def test_inspect_names_family_task_io_labels(hf_family_dir, name, arch):
    result = invoke("inspect", hf_family_dir(name), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["family"] == Family.image_classification.value
    assert summary["architecture"] == arch
    assert summary["task"]["kind"] == "classification"
    assert summary["io"]["inputs"] == [
        {"name": "pixel_values", "dtype": "float32", "shape": ["batch", 3, 32, 32]}
    ]
    assert summary["io"]["outputs"][0]["name"] == "logits"
    assert summary["io"]["outputs"][0]["shape"] == ["batch", 3]
    assert summary["labels"] == {"0": "cat", "1": "dog", "2": "bird"}
    assert summary["preprocess"]["processor"].endswith("ImageProcessor")
    text = invoke("inspect", hf_family_dir(name)).output
    assert "family   image-classification" in text and "labels   3: 0=cat" in text


def test_bundle_has_pixels_examples_and_no_tokenizer(hf_family_dir):
    bundle = load_hf(hf_family_dir("vit"), TaskSpec())
    assert bundle.tokenizer_dir is None and not bundle.is_text
    pixels = bundle.example_inputs["pixel_values"]
    assert pixels.shape == (2, 3, 32, 32) and pixels.dtype == np.float32
    assert -1.0 <= pixels.min() < pixels.max() <= 1.0  # ViT's mean/std 0.5
    assert bundle.extra["image"]["resize"] == {"height": 32, "width": 32}
    # the default data: digits through the preprocessing, unlabelled (3 classes, not digits)
    assert bundle.task.data.endswith(":unlabelled_digits")


# "int8" per family: transformers (ViT) int8-dynamic after the fusions, convnets int8-static
# (calibrated on the default data: digits upscaled by the model's preprocessing).
@pytest.mark.parametrize(
    ("name", "scheme", "max_drop"),
    [("vit", "int8-dynamic", 0.01), ("resnet", "int8-static", 0.01),
     pytest.param("convnext", "int8-static", 0.1, marks=pytest.mark.slow)],
)  # fmt: skip
def test_export_float_and_int8_validated_against_torch(hf_family_dir, tmp_path, name, scheme,
                                                       max_drop):  # fmt: skip
    out = tmp_path / "out"
    tolerance = json.dumps({"tolerance": {"max_metric_drop": max_drop}})
    result = invoke(
        "export", "onnx", hf_family_dir(name), "--task", "classification", "--quantize", scheme,
        "--config", tolerance, "-o", out, "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    fp32, int8 = manifest["variants"]
    assert fp32["validation"]["passed"] and fp32["validation"]["max_abs_diff"] < 1e-4
    assert fp32["validation"]["samples"] == 360  # the digits test split
    assert int8["scheme"] == scheme and int8["validation"]["passed"]
    assert int8["validation"]["cosine"] > 0.95
    assert int8["size_bytes"] < fp32["size_bytes"]
    metric = int8["validation"]["metric"]
    assert metric["metric"] == "accuracy" and metric["torch_value"] == 1.0  # agreement
    assert metric["value"] >= 1.0 - max_drop
    facts = onnx_metadata.read(out / int8["path"])
    assert facts["family"] == "image-classification" and facts["id2label"]["1"] == "dog"
    assert facts["image"]["height"] == 32
    onnx_summary = json.loads(invoke("inspect", out / int8["path"], "--json").stdout)
    assert onnx_summary["family"] == "image-classification"
    assert onnx_summary["labels"]["2"] == "bird" and onnx_summary["preprocess"]["width"] == 32


def test_convnext_without_preprocessor_config_loads_from_config(tmp_path):
    from tests.hf.conftest import build_convnext

    folder = build_convnext(tmp_path / "convnext", processor=False)
    result = invoke("inspect", folder, "--json")
    assert result.exit_code == 0, result.output
    pre = json.loads(result.stdout)["preprocess"]
    assert "no preprocessor_config.json" in pre["source"]
    assert (pre["height"], pre["width"]) == (32, 32)


@pytest.mark.slow
def test_lambda_zip_answers_png_and_jpeg_requests(hf_family_dir, tmp_path):
    out = tmp_path / "export"
    assert invoke(
        "export", "onnx", hf_family_dir("vit"), "--quantize", "int8-dynamic", "-o", out
    ).exit_code == 0  # fmt: skip
    result = invoke(
        "package", "lambda", out / "model.int8.onnx", "--arch", "x86_64", "--python", "3.12",
        "-o", tmp_path / "zip", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    z = json.loads(result.stdout)["lambda"]
    assert "pillow" in z["versions"]
    check = z["self_check"]
    if "skipped" in check:
        pytest.skip(check["skipped"])
    images = check["images"]
    assert images["passed"] and images["images"] == ["PNG", "JPEG"]
    good = [e for e in images["events"] if "status" not in e]
    assert len(good) == 2 and all(e["label_names"][0] in ("cat", "dog", "bird") for e in good)
    assert all(max(e["max_abs_diff"].values()) < 1e-3 for e in good)
    bad = {e["event"]: e["error"] for e in images["events"] if "status" in e}
    assert "base64" in bad["image not base64"] and "PNG or JPEG" in bad["image not PNG/JPEG"]
