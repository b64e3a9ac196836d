"""``compress export``: exit codes, atomic output, manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import edgecompress.zoo
from edgecompress.cli.main import cli
from edgecompress.outdir import sha256_file

WEIGHTS = str(Path(edgecompress.zoo.__file__).parent / "digits_cnn.pt")
FACTORY = ["--factory", "edgecompress.zoo:digits_cnn"]


def test_export_onnx_int8_writes_manifest(tmp_path):
    out = tmp_path / "out"
    args = [
        "export",
        "onnx",
        WEIGHTS,
        *FACTORY,
        "--quantize",
        "int8-static",
        "-o",
        str(out),
        "--json",
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert json.loads(result.stdout) == manifest
    names = [v["name"] for v in manifest["variants"]]
    assert names == ["onnx-fp32", "onnx-int8-static"]
    assert all(v["validation"]["passed"] for v in manifest["variants"])
    assert set(manifest["files"]) == {"model.onnx", "model.int8.onnx"}
    for name, digest in manifest["files"].items():
        assert sha256_file(out / name) == digest
    assert manifest["tool"]["name"] == "edgecompress" and manifest["schema_version"] == 1
    assert (manifest["command"], manifest["format"]) == ("export", "onnx")
    assert manifest["baseline"]["value"] > 0.98


def test_tolerance_breach_exits_1_with_measured_and_allowed(tmp_path):
    out = tmp_path / "out"
    config = json.dumps({"tolerance": {"fp32_max_abs_diff": 0}})
    args = ["export", "onnx", WEIGHTS, *FACTORY, "--config", config, "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    assert "max_abs_diff" in result.output and "> allowed 0" in result.output
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no temp folder left beside OUT either


def test_missing_out_exits_2(tmp_path):
    result = CliRunner().invoke(cli, ["export", "onnx", WEIGHTS, *FACTORY])
    assert result.exit_code == 2, result.output
    assert "-o" in result.output


def test_unknown_scheme_exits_2(tmp_path):
    args = ["export", "onnx", WEIGHTS, *FACTORY, "--quantize", "int3", "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "int3" in result.output


@pytest.mark.parametrize("scheme", ["int4-weight-only", "int8-token"])
def test_scheme_the_format_cannot_realise_exits_2(tmp_path, scheme):
    args = ["export", "tflite", WEIGHTS, *FACTORY, "--quantize", scheme, "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert scheme in result.output
    assert not (tmp_path / "o").exists()


def test_bad_config_exits_2(tmp_path):
    args = [
        "export",
        "onnx",
        WEIGHTS,
        *FACTORY,
        "--config",
        '{"opset": 9}',
        "-o",
        str(tmp_path / "o"),
    ]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output
    assert "opset" in result.output
