"""``compress deploy lambda``: create then update a function against moto's Lambda API
(server mode on 127.0.0.1; the function is never invoked: moto would need docker)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.cli.main import cli
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskSpec
from tests.awslambda.lambda_models import digits_int8_onnx

ROLE = "arn:aws:iam::123456789012:role/edgecompress-lambda"


pytestmark = pytest.mark.usefixtures("fake_aws")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("deploy")
    model = digits_int8_onnx(folder)
    io = load_onnx(model, TaskSpec()).io
    out = folder / "out"
    options = LambdaTarget(arch="arm64", python="3.12", self_check=False)
    build_lambda_zip(model, io, TaskSpec(), out, options)
    return out


def _deploy(target: Path, url: str, *args: str):
    return CliRunner().invoke(
        cli,
        ["deploy", "lambda", str(target), "--function-name", "digits", "--role-arn", ROLE]
        + ["--endpoint-url", url, "--json", *args],
    )


def _config(url: str) -> dict:
    import boto3

    client = boto3.client("lambda", region_name="us-east-1", endpoint_url=url)
    return client.get_function(FunctionName="digits")["Configuration"]


@pytest.mark.slow
def test_create_then_update_function(built, moto_url):
    import boto3

    iam = boto3.client("iam", region_name="us-east-1", endpoint_url=moto_url)
    policy = {"Version": "2012-10-17", "Statement": []}
    iam.create_role(RoleName="edgecompress-lambda", AssumeRolePolicyDocument=json.dumps(policy))
    zip_path = built / "lambda-arm64-py3.12.zip"
    result = _deploy(built, moto_url, "--memory-mb", "512")  # the folder: its one zip
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    config = _config(moto_url)
    assert created["action"] == "created" and config["Runtime"] == "python3.12"
    assert config["Handler"] == "handler.handler" and config["Architectures"] == ["arm64"]
    assert config["MemorySize"] == 512 and config["Timeout"] == 30 and config["Role"] == ROLE
    assert config["CodeSize"] == zip_path.stat().st_size == created["code_size"]
    with zipfile.ZipFile(zip_path) as zf:
        assert "handler.py" in zf.namelist()

    again = _deploy(zip_path, moto_url, "--memory-mb", "2048", "--timeout-s", "60")
    assert again.exit_code == 0, again.output
    updated = json.loads(again.output)
    config = _config(moto_url)
    assert updated["action"] == "updated" and config["MemorySize"] == 2048
    assert config["Timeout"] == 60 and config["CodeSha256"] == created["code_sha256"]


def test_bad_target_is_a_clear_error(tmp_path, moto_url):
    result = _deploy(tmp_path, moto_url)  # an empty folder
    assert result.exit_code == 1 and "exactly one lambda-*.zip" in result.output
    not_ours = tmp_path / "x.zip"
    with zipfile.ZipFile(not_ours, "w") as zf:
        zf.writestr("a.txt", "a")
    result = _deploy(not_ours, moto_url)
    assert result.exit_code == 1 and "not an edgecompress Lambda zip" in result.output
    missing = CliRunner().invoke(cli, ["deploy", "lambda", str(not_ours)])
    assert missing.exit_code == 2 and "--function-name" in missing.output
