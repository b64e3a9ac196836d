"""Create or update an AWS Lambda function from a deploy zip built by ``build_lambda_zip``
(boto3, the ``aws`` extra). The zip's target (arch, python) is read from its io_spec.json, so
the function's runtime and architecture always match the vendored wheels.

With ``alias`` the upload is published as a new version and the alias moved to it, or, with
``canary_percent``, only that share of the alias's traffic (a canary A/B release); then
``promote_alias`` moves the alias fully and ``rollback_alias`` restores the version before
(see alias.py). A zip built with ``snapstart: true`` turns SnapStart on for published versions.

Public API: ``deploy_lambda(zip_or_out, function_name, role_arn, ...) -> dict``,
``promote_alias(function_name, alias, ...)``, ``rollback_alias(function_name, alias, ...)``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import zipfile
from pathlib import Path

from edgecompress.awslambda import alias as lambda_alias
from edgecompress.errors import ExportError

DIRECT_UPLOAD_BYTES = 50 * 1024 * 1024  # larger zips go through S3
HANDLER = "handler.handler"


def resolve_zip(zip_or_out: Path) -> tuple[Path, dict]:
    """The zip (a .zip, or the one lambda-*.zip in an output folder) and its target."""
    path = Path(zip_or_out)
    if path.is_dir():
        zips = sorted(path.glob("lambda-*.zip"))
        if len(zips) != 1:
            found = ", ".join(z.name for z in zips) or "none"
            raise ExportError(
                f"deploy: {path} must hold exactly one lambda-*.zip (found {found}); "
                "pass the zip itself"
            )
        path = zips[0]
    if not path.is_file():
        raise ExportError(f"deploy: no such zip or folder: {path}")
    try:
        with zipfile.ZipFile(path) as zf:
            spec = json.loads(zf.read("io_spec.json"))
            names = set(zf.namelist())
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ExportError(f"deploy: {path} is not an edgecompress Lambda zip ({exc})") from None
    target = spec.get("target")
    if target:
        target = {**target, "snapstart": bool(spec.get("snapstart"))}
    if not target or "handler.py" not in names:
        raise ExportError(f"deploy: {path} has no handler.py / target in io_spec.json; rebuild it")
    if path.stat().st_size > DIRECT_UPLOAD_BYTES:
        raise ExportError(
            f"deploy: {path.name} is {path.stat().st_size} bytes > 50 MiB direct upload; "
            "upload it to S3 and deploy from there, or shrink the model"
        )
    return path, target


def deploy_lambda(
    zip_or_out: Path,
    function_name: str,
    role_arn: str,
    *,
    region: str = "us-east-1",
    memory_mb: int = 1024,
    timeout_s: int = 30,
    endpoint_url: str | None = None,
    alias: str | None = None,
    canary_percent: float | None = None,
) -> dict:
    """Create the function, or update its code and configuration; return what Lambda reports.
    With ``alias``: publish a version and move the alias to it (``canary_percent``: only that
    share of its traffic; the alias must exist)."""
    if canary_percent is not None and not alias:
        raise ExportError("deploy: a canary needs an alias (--alias NAME --canary PCT)")
    path, target = resolve_zip(zip_or_out)
    client = _client(region, endpoint_url)
    code = path.read_bytes()
    config = {
        "Runtime": f"python{target['python']}",
        "Handler": HANDLER,
        "MemorySize": memory_mb,
        "Timeout": timeout_s,
        "Role": role_arn,
    }
    if target.get("snapstart"):
        config["SnapStart"] = {"ApplyOn": "PublishedVersions"}
    with _aws_errors(function_name):
        if canary_percent is not None:  # checked before anything is uploaded
            _check_canary(client, function_name, alias, path, _sha256(code))
        result = _upload(client, function_name, path, code, config, target)
        if alias:
            result.update(_release(client, function_name, alias, canary_percent, path.name))
    return result


def _sha256(code: bytes) -> str:
    return base64.b64encode(hashlib.sha256(code).digest()).decode()


def _check_canary(client, name: str, alias: str, path: Path, sha: str) -> None:
    """The alias exists and does not already serve this very zip."""
    state = lambda_alias.require(client, name, alias)
    serving = client.get_function_configuration(
        FunctionName=name, Qualifier=state["function_version"]
    )
    if serving.get("CodeSha256") == sha:
        raise ExportError(
            f"deploy: alias {alias!r} already serves {path.name} (version "
            f"{state['function_version']}, same code sha256): nothing to canary"
        )


def _release(client, name: str, alias: str, percent: float | None, zip_name: str) -> dict:
    """Publish $LATEST and move ``alias`` to it (fully, or ``percent`` % as a canary)."""
    _wait_updated(client, name)
    version = lambda_alias.publish(client, name, f"edgecompress {zip_name}")
    if percent is None:
        state = lambda_alias.point(client, name, alias, version)
    else:
        state = lambda_alias.canary(client, name, alias, version, percent)
    return {"version": version, "alias": state}


def promote_alias(function_name: str, alias: str, **client_args) -> dict:
    """The alias's canary version takes all its traffic; the new alias state."""
    client = _client(**client_args)
    with _aws_errors(function_name):
        return {"action": "promoted", "alias": lambda_alias.promote(client, function_name, alias)}


def rollback_alias(function_name: str, alias: str, **client_args) -> dict:
    """The canary stopped, or the alias back on its previous version; the new alias state."""
    client = _client(**client_args)
    with _aws_errors(function_name):
        state = lambda_alias.rollback(client, function_name, alias)
    return {"action": "rolled back", "alias": state}


def _upload(client, function_name: str, path: Path, code: bytes, config: dict, target) -> dict:
    with _aws_errors(function_name):
        if _exists(client, function_name):
            action = "updated"
            client.update_function_code(
                FunctionName=function_name, ZipFile=code, Architectures=[target["arch"]]
            )
            _wait_updated(client, function_name)
            client.update_function_configuration(FunctionName=function_name, **config)
            _wait_updated(client, function_name)
        else:
            action = "created"
            client.create_function(
                FunctionName=function_name,
                Code={"ZipFile": code},
                Architectures=[target["arch"]],
                Description=f"edgecompress model ({target['arch']}, python{target['python']})",
                **config,
            )
        final = client.get_function_configuration(FunctionName=function_name)
    return _result(action, path, code, final)


def _result(action: str, path: Path, code: bytes, final: dict) -> dict:
    sha = _sha256(code)
    if final.get("CodeSha256") != sha:
        raise ExportError(
            f"deploy: Lambda reports code sha256 {final.get('CodeSha256')} but {path.name} "
            f"has {sha}: the upload did not land"
        )
    return {
        "action": action,
        "zip": str(path),
        "function_name": final["FunctionName"],
        "function_arn": final["FunctionArn"],
        "runtime": final["Runtime"],
        "handler": final["Handler"],
        "architectures": final.get("Architectures", []),
        "memory_mb": final["MemorySize"],
        "timeout_s": final["Timeout"],
        "code_size": final["CodeSize"],
        "code_sha256": final["CodeSha256"],
    }


def _client(region: str = "us-east-1", endpoint_url: str | None = None):
    try:
        import boto3
    except ImportError:
        raise ExportError(
            "deploy: boto3 is not installed (pip install 'edgecompress[aws]')"
        ) from None
    return boto3.client("lambda", region_name=region, endpoint_url=endpoint_url)


def _exists(client, name: str) -> bool:
    try:
        client.get_function(FunctionName=name)
        return True
    except client.exceptions.ResourceNotFoundException:
        return False


def _wait_updated(client, name: str, timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        conf = client.get_function_configuration(FunctionName=name)
        status = conf.get("LastUpdateStatus", "Successful")
        if status == "Successful" and conf.get("State", "Active") != "Pending":
            return  # a new function is Pending until Active: it cannot be published before
        if status == "Failed":
            raise ExportError(
                f"deploy: update of {name} failed: {conf.get('LastUpdateStatusReason')}"
            )
        time.sleep(1)
    raise ExportError(f"deploy: {name} still updating after {timeout_s:g} s")


class _aws_errors:  # noqa: N801 (used as a context manager)
    """botocore errors -> ExportError naming the function and AWS's message."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            raise ExportError(
                f"deploy: {self.name}: {err.get('Code')}: {err.get('Message')}"
            ) from None
        if isinstance(exc, BotoCoreError):
            raise ExportError(f"deploy: {self.name}: {exc}") from None
        return False
