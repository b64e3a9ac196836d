"""``compress package lambda``: a real zip for the host (run under awslambdaric) and for
arm64 / Python 3.12 (wheel tags and ELF machines verified), the budget breach, the layout."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from edgecompress.awslambda.options import LambdaSection, LambdaTarget
from edgecompress.cli.main import cli
from edgecompress.cli.package import lambda_, lambda_options
from edgecompress.outdir import sha256_file
from tests.awslambda.lambda_models import digits_int8_onnx

MALFORMED = {
    "wrong shape": "dims",
    "wrong dtype (strings)": "dtype",
    "wrong dtype (npy)": "dtype",
    "missing key": "missing",
    "non-JSON body": "JSON",
    "10 MB body": "too large",
}


@pytest.fixture(scope="module")
def digits_onnx(tmp_path_factory) -> Path:
    return digits_int8_onnx(tmp_path_factory.mktemp("digits"))


def _package(model: Path, out: Path, *args: str):
    return CliRunner().invoke(
        cli, ["package", "lambda", str(model), "-o", str(out), "--json", *args]
    )


def test_host_zip_runs_under_awslambdaric(digits_onnx, tmp_path):
    out = tmp_path / "out"
    result = _package(digits_onnx, out, "--arch", "x86_64", "--python", "3.11")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.output)
    z = manifest["lambda"]
    assert sorted(p.name for p in out.iterdir()) == [
        "lambda-x86_64-py3.11.zip",
        "manifest.json",
        "template.yaml",
    ]
    assert manifest["tool"]["name"] == "edgecompress" and manifest["command"] == "package lambda"
    assert manifest["memory_mb"] == 1024 and manifest["timeout_s"] == 30
    assert manifest["files"] == {
        name: sha256_file(out / name) for name in ("lambda-x86_64-py3.11.zip", "template.yaml")
    }
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert z["path"] == "lambda-x86_64-py3.11.zip" and z["template"] == "template.yaml"
    check = z["self_check"]
    assert check["passed"] is True
    events = {e["event"]: e for e in check["events"]}
    for label, word in MALFORMED.items():
        assert events[label]["status"] == 400, events[label]
        assert word.lower() in events[label]["error"].lower(), events[label]
        assert "Traceback" not in events[label]["error"]
    for label in ("direct lists", "proxy base64 npy", "good after bad"):
        assert events[label]["passed"] and events[label]["max_abs_diff"]["logits"] <= 1e-3
    assert set(check["cold_start"]) >= {"import_ms", "load_ms", "first_inference_ms", "total_ms"}
    assert z["versions"] == {"numpy": "1.26.4", "onnxruntime": "1.16.3"}
    _check_zip_contents(out / "lambda-x86_64-py3.11.zip", z)
    template = (out / "template.yaml").read_text()
    for line in (
        "Runtime: python3.11",
        "Handler: handler.handler",
        "- x86_64",
        "MemorySize: 1024",
        "Timeout: 30",
        "CodeUri: lambda-x86_64-py3.11.zip",
    ):
        assert line in template


def _check_zip_contents(path: Path, z: dict) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        handler = zf.read("handler.py").decode()
    assert names == sorted(names)
    assert {"handler.py", "io_spec.json", "model.onnx"} <= set(names)
    assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in infos)
    assert {(i.external_attr >> 16) & 0o777 for i in infos} <= {0o644, 0o755}
    assert not any(n.startswith("onnxruntime/capi/libonnxruntime.so") for n in names)
    assert not any(
        "/tests/" in n or n.startswith(("onnxruntime/transformers/", "onnxruntime/quantization/"))
        for n in names
    )
    assert "import edgecompress" not in handler and "from edgecompress" not in handler
    assert z["zipped_bytes"] == path.stat().st_size
    assert sum(p["zipped"] for p in z["breakdown"].values()) < z["zipped_bytes"]
    removed = {r["path"]: r["bytes"] for r in z["removed"]}
    assert (
        any(p.startswith("onnxruntime/capi/libonnxruntime.so") for p in removed)
        or z["versions"]["onnxruntime"] == "1.16.3"
    )  # 1.16 wheels do not ship it
    assert all(b >= 0 for b in removed.values()) and z["removed_bytes"] > 1_000_000


def test_arm64_py312_wheels_and_elf_verified(digits_onnx, tmp_path):
    out = tmp_path / "out"
    result = _package(digits_onnx, out, "--arch", "arm64", "--python", "3.12")
    assert result.exit_code == 0, result.output
    z = json.loads(result.output)["lambda"]
    check = z["self_check"]
    assert "cannot run on this host" in check["skipped"]
    assert check["verified"]["elf"]["e_machine"] == 183 and check["verified"]["elf"]["files"] > 5
    assert "manylinux_2_34_aarch64" in check["verified"]["platforms_accepted"]
    for wheel in check["verified"]["wheels"]:
        assert "aarch64" in wheel["platform_tag"] and wheel["python_tag"] in ("cp312", "cp310")
    with zipfile.ZipFile(out / "lambda-arm64-py3.12.zip") as zf:
        machines = {
            int.from_bytes(zf.read(i)[18:20], "little")
            for i in zf.infolist()
            if zf.read(i)[:4] == b"\x7fELF"
        }
        names = zf.namelist()
    assert machines == {183}
    assert not any(n.startswith("onnxruntime/capi/libonnxruntime.so") for n in names)
    assert any(r["path"].startswith("onnxruntime/capi/libonnxruntime.so") for r in z["removed"])
    assert {"model", "onnxruntime", "numpy", "handler"} <= set(z["breakdown"])
    assert z["zipped_bytes"] < 50 * 1024 * 1024
    assert "Architectures:\n        - arm64" in (out / "template.yaml").read_text()


def test_budget_breach_exit_1_nothing_written(digits_onnx, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "package",
            "lambda",
            str(digits_onnx),
            "-o",
            str(out),
            "--arch",
            "arm64",
            "--python",
            "3.12",
            "--budget-mib",
            "1",
        ],
    )
    assert result.exit_code == 1, result.output
    for word in (
        "zipped > budget 1 MiB",
        "Biggest parts",
        "onnxruntime",
        "numpy",
        "model",
        "LiteRT",
        "S3",
        "layer",
        "container image",
    ):
        assert word in result.output, result.output
    assert not out.exists()
    assert not list(tmp_path.iterdir())  # no temp folder left beside OUT either


def test_refuses_existing_out_and_bad_model(digits_onnx, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = _package(digits_onnx, out, "--arch", "arm64")
    assert result.exit_code == 2 and "--force" in result.output  # OutputExistsError: usage
    bad = _package(tmp_path / "nope.onnx", tmp_path / "o2")
    assert bad.exit_code == 1 and "nope.onnx" in bad.output
    usage = _package(digits_onnx, tmp_path / "o3", "--arch", "ppc64")
    assert usage.exit_code == 2


def test_flag_defaults_are_the_options_defaults():
    params = {p.name: p for p in lambda_.params}
    target = LambdaTarget()
    for name in ("arch", "python", "budget_mib", "unzipped_budget_mib", "memory_mb", "timeout_s"):
        value = getattr(target, name)
        assert params[name].default == getattr(value, "value", value), name
    shown = (target.arch.value, target.python.value, target.budget_mib, target.unzipped_budget_mib)
    assert shown == ("x86_64", "3.12", 50.0, 250.0)
    assert (target.memory_mb, target.timeout_s, target.self_check) == (1024, 30, True)
    # a recipe's default section: the same options, memory the largest of [512, 1024, 2048]
    assert LambdaSection().for_arch("arm64") == LambdaTarget(arch="arm64", memory_mb=2048)


def test_invalid_flags_are_usage_errors_naming_the_flag(tmp_path):
    for flag, value in (("--budget-mib", "0"), ("--memory-mb", "64"), ("--python", "3.9")):
        result = _package(tmp_path / "nope.onnx", tmp_path / "o", flag, value)
        assert result.exit_code == 2 and flag in result.output, result.output
    with pytest.raises(click.BadParameter) as info:
        lambda_options({"unzipped_budget_mib": -1})
    assert "'--unzipped-budget-mib'" in info.value.format_message()
    assert "must be > 0, got -1" in info.value.format_message()
    assert not (tmp_path / "o").exists()
