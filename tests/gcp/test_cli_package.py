"""``compress package gcf|cloudrun``: exit codes and messages (CliRunner)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgecompress.cli.main import cli


def _run(*args):
    return CliRunner().invoke(cli, ["package", *map(str, args)])


def test_usage_errors_exit_2_naming_the_flag(tmp_path):
    model = tmp_path / "m.onnx"  # flags are checked before the model is read
    result = _run("gcf", model, "-o", tmp_path / "a", "--concurrency", "4")
    assert result.exit_code == 2 and "concurrency 4 needs at least 1 vCPU" in result.output
    result = _run("cloudrun", model, "-o", tmp_path / "a", "--cpu", "3")
    assert result.exit_code == 2 and "at least 1 vCPU comes in (1, 2, 4, 6, 8)" in result.output
    result = _run("gcf", model, "-o", tmp_path / "a", "--runtime", "python39")
    assert result.exit_code == 2 and "--runtime" in result.output
    assert not (tmp_path / "a").exists()


def test_missing_model_exits_1(tmp_path):
    result = _run("gcf", tmp_path / "nope.onnx", "-o", tmp_path / "a")
    assert result.exit_code == 1 and "file not found" in result.output


def test_existing_out_refused_without_force(gcp_digits, tmp_path):
    model, _ = gcp_digits
    out = tmp_path / "out"
    result = _run("gcf", model, "-o", out, "--no-self-check", "--memory-mib", "2048", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["command"] == "package gcf" and manifest["gcf"]["cpu"] == 1.0
    assert manifest["gcf"]["self_check"] == {"skipped": "self_check=False"}
    assert "--memory=2048MiB" in manifest["gcf"]["deploy"]
    assert "gcf-python312/model.onnx" in manifest["files"]
    again = _run("gcf", model, "-o", out, "--no-self-check")
    assert again.exit_code == 2 and "exists; pass --force" in again.output
    forced = _run("cloudrun", model, "-o", out, "--no-self-check", "--force")
    assert forced.exit_code == 0 and (out / "cloudrun-python312" / "Dockerfile").is_file()
    assert not (out / "gcf-python312").exists()  # --force replaced OUT as a whole
