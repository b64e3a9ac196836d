"""Canary A/B releases against moto's Lambda API in server mode (127.0.0.1): publish, route
10 % of an alias to the new version, promote, roll back; the alias state is read back from the
server after each move. moto 5 stores an alias's RoutingConfig and publishes versions; it
never invokes the function (that would need docker), so traffic splitting itself is Lambda's."""

from __future__ import annotations

import json
import zipfile

import pytest
from click.testing import CliRunner

from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.cli.main import cli
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskSpec
from tests.awslambda.lambda_models import digits_int8_onnx

ROLE = "arn:aws:iam::123456789012:role/edgecompress-lambda"
NAME = "digits-ab"


pytestmark = pytest.mark.usefixtures("fake_aws")


@pytest.fixture(scope="module")
def moto_url(moto_url):
    """The shared moto server, with the functions' execution role created."""
    import boto3

    iam = boto3.client(
        "iam", region_name="us-east-1", endpoint_url=moto_url, aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )  # fmt: skip
    policy = {"Version": "2012-10-17", "Statement": []}
    iam.create_role(RoleName="edgecompress-lambda", AssumeRolePolicyDocument=json.dumps(policy))
    return moto_url


@pytest.fixture(scope="module")
def two_zips(tmp_path_factory):
    """Two real zips of the same model that differ in code (A and B of the release)."""
    folder = tmp_path_factory.mktemp("canary")
    model = digits_int8_onnx(folder)
    io = load_onnx(model, TaskSpec()).io
    options = LambdaTarget(arch="x86_64", python="3.12", self_check=False)
    a = build_lambda_zip(model, io, TaskSpec(), folder / "a", options).path
    b = folder / "b.zip"
    with zipfile.ZipFile(a) as src, zipfile.ZipFile(b, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info, src.read(info.filename))
        dst.writestr("RELEASE", "B")
    return a, b


def _cli(url: str, *args: str):
    base = ["deploy", "lambda", "--function-name", NAME, "--endpoint-url", url, "--json"]
    result = CliRunner().invoke(cli, [*base, *args])
    return result.exit_code, result.output


def _alias(url: str) -> dict:
    import boto3

    client = boto3.client("lambda", region_name="us-east-1", endpoint_url=url)
    raw = client.get_alias(FunctionName=NAME, Name="live")
    weights = (raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return {"version": raw["FunctionVersion"], "weights": weights}


@pytest.mark.slow
def test_canary_promote_rollback(two_zips, moto_url):
    a, b = two_zips
    code, out = _cli(moto_url, str(a), "--role-arn", ROLE, "--alias", "live", "--canary", "10")
    assert code == 1 and "no alias 'live'; deploy with --alias first" in out  # nothing uploaded

    code, out = _cli(moto_url, str(a), "--role-arn", ROLE, "--alias", "live")
    assert code == 0, out
    first = json.loads(out)
    assert first["action"] == "created" and first["version"] == "1"
    assert _alias(moto_url) == {"version": "1", "weights": {}}

    code, out = _cli(moto_url, str(b), "--role-arn", ROLE, "--alias", "live", "--canary", "10")
    assert code == 0, out
    canary = json.loads(out)
    assert canary["action"] == "updated" and canary["version"] == "2"
    assert canary["alias"]["routing"] == {"2": 0.1}
    assert _alias(moto_url) == {"version": "1", "weights": {"2": 0.1}}

    code, out = _cli(moto_url, "--alias", "live", "--promote")
    assert code == 0, out
    assert json.loads(out)["alias"]["previous_version"] == "1"
    assert _alias(moto_url) == {"version": "2", "weights": {}}
    code, out = _cli(moto_url, "--alias", "live", "--promote")
    assert code == 1 and "no canary to promote" in out

    code, out = _cli(moto_url, "--alias", "live", "--rollback")
    assert code == 0, out
    assert _alias(moto_url) == {"version": "1", "weights": {}}
    code, out = _cli(moto_url, "--alias", "live", "--rollback")
    assert code == 1 and "no previous version" in out


@pytest.mark.slow
def test_rollback_during_a_canary_keeps_the_primary(two_zips, moto_url):
    a, b = two_zips
    name = ["--function-name", "digits-ab2"]

    def run(*args):
        base = ["deploy", "lambda", *name, "--endpoint-url", moto_url]
        return CliRunner().invoke(cli, [*base, *args])

    assert run(str(a), "--role-arn", ROLE, "--alias", "live").exit_code == 0
    same = run(str(a), "--role-arn", ROLE, "--alias", "live", "--canary", "5")
    assert same.exit_code == 1 and "already serves" in same.output  # A against A
    assert "nothing to canary" in same.output
    routed = run(str(b), "--role-arn", ROLE, "--alias", "live", "--canary", "25")
    assert routed.exit_code == 0, routed.output
    assert "alias live -> version 2 (canary" not in routed.output
    assert "alias live -> version 1 (canary version 2: 25%)" in routed.output
    back = run("--alias", "live", "--rollback")
    assert back.exit_code == 0, back.output
    assert "rolled back alias live" in back.output
    assert "alias live -> version 1 (all traffic)" in back.output


def test_flag_misuse_is_a_usage_error(tmp_path):
    cases = [
        (["--promote", "--rollback", "--alias", "x"], "exclude each other"),
        (["--promote"], "need --alias"),
        ([str(tmp_path), "--alias", "x", "--promote"], "move the alias only"),
        ([str(tmp_path), "--role-arn", ROLE, "--canary", "10"], "--canary needs --alias"),
        ([str(tmp_path), "--alias", "x", "--canary", "100"], "0<x<100"),
        ([], "Missing argument 'OUT_OR_ZIP'"),
        ([str(tmp_path)], "--role-arn"),
    ]
    for args, message in cases:
        result = CliRunner().invoke(cli, ["deploy", "lambda", "--function-name", "f", *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
