"""``compress package lambda MODEL -o OUT``: an AWS Lambda deploy zip + SAM template."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgecompress.awslambda.bundle import build_lambda_zip, tflite_io
from edgecompress.awslambda.deploy import deploy_lambda
from edgecompress.awslambda.sizes import mib
from edgecompress.cli.common import emit_json, force_option, handle_errors, json_option, out_option
from edgecompress.errors import ExportError
from edgecompress.iospec import IOSpec
from edgecompress.loaders import load_onnx
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.outdir import atomic_dir, sha256_file


@click.group("package")
def package() -> None:
    """Pack an exported model (.onnx / .tflite) into a deploy bundle."""


@package.command("lambda")
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--arch",
    type=click.Choice(["arm64", "x86_64"]),
    default="x86_64",
    show_default=True,
    help="Lambda architecture.",
)
@click.option(
    "--python",
    "python",
    type=click.Choice(["3.11", "3.12", "3.13"]),
    default="3.12",
    show_default=True,
    help="Lambda runtime pythonX.Y.",
)
@click.option(
    "--budget-mib",
    type=click.FloatRange(min=0, min_open=True),
    default=50.0,
    show_default=True,
    help="Zipped size budget (direct upload limit is 50 MiB).",
)
@click.option(
    "--unzipped-budget-mib",
    type=click.FloatRange(min=0, min_open=True),
    default=250.0,
    show_default=True,
    help="Unzipped size budget.",
)
@click.option(
    "--memory-mb",
    type=click.IntRange(128, 10240),
    default=1024,
    show_default=True,
    help="Function memory (threads = memory / 1769 MB, at least 1).",
)
@click.option("--timeout-s", type=click.IntRange(1, 900), default=30, show_default=True)
@click.option(
    "--task",
    type=click.Choice(["classification", "embedding", "regression"]),
    default="classification",
    show_default=True,
)
@click.option(
    "--tokenizer",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder with tokenizer.json (text models).",
)
@click.option("--no-self-check", is_flag=True, help="Skip running the zip under awslambdaric.")
@out_option()
@force_option
@json_option
@handle_errors
def lambda_(
    model: Path,
    arch: str,
    python: str,
    budget_mib: float,
    unzipped_budget_mib: float,
    memory_mb: int,
    timeout_s: int,
    task: str,
    tokenizer: Path | None,
    no_self_check: bool,
    out: Path,
    force: bool,
    as_json: bool,
) -> None:
    """Build OUT/lambda-<arch>-py<ver>.zip, template.yaml and manifest.json from MODEL."""

    task_spec = _task(task)
    io = _io_for(model, task_spec)
    with atomic_dir(out, force) as tmp:
        result = build_lambda_zip(
            model,
            io,
            task_spec,
            tmp,
            arch,
            python,
            tokenizer_dir=tokenizer,
            memory_mb=memory_mb,
            budget_mib=budget_mib,
            unzipped_budget_mib=unzipped_budget_mib,
            timeout_s=timeout_s,
            self_check=not no_self_check,
        )
        doc = result.to_dict()
        doc["path"], doc["template"] = result.path.name, result.template.name
        manifest = {
            "schema_version": 1,
            "command": "package lambda",
            "model": {"path": str(model), "sha256": sha256_file(model)},
            "memory_mb": memory_mb,
            "timeout_s": timeout_s,
            "lambda": doc,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    if as_json:
        emit_json(manifest)
    else:
        click.echo(render(manifest, out))


def _task(kind: str):

    if kind == "embedding":
        return TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    if kind == "regression":
        return TaskSpec(kind=TaskKind.regression, metric="mse")
    return TaskSpec()


def _io_for(model: Path, task):

    if not model.is_file():
        raise ExportError(f"model: file not found: {model}")
    if model.suffix == ".onnx":
        return load_onnx(model, task).io
    if model.suffix == ".tflite":
        return tflite_io(model, IOSpec())
    raise ExportError(f"model: {model} must be an .onnx or .tflite file")


def render(manifest: dict, out: Path) -> str:

    z = manifest["lambda"]
    lines = [
        f"{out / z['path']}  ({z['arch']}, python{z['python']}, {z['runtime']})",
        f"  zipped {mib(z['zipped_bytes'])}, unzipped {mib(z['unzipped_bytes'])}, "
        f"sha256 {z['sha256'][:16]}...",
        f"  pinned: {', '.join(f'{k}=={v}' for k, v in z['versions'].items())}",
    ]
    for name, part in sorted(z["breakdown"].items(), key=lambda kv: -kv[1]["zipped"]):
        lines.append(
            f"    {name:<12} {mib(part['zipped']):>11} zipped {mib(part['unzipped']):>11} unzipped"
        )
    lines.append(f"  trimmed {len(z['removed'])} files ({mib(z['removed_bytes'])})")
    check = z["self_check"]
    if "skipped" in check:
        lines.append(f"  self-check skipped: {check['skipped']}")
    else:
        cold = check["cold_start"]
        lines.append(
            f"  self-check passed: {len(check['events'])} events under awslambdaric; "
            f"cold start {cold.get('total_ms', 0):.0f} ms (import "
            f"{cold.get('import_ms', 0):.0f}, load {cold.get('load_ms', 0):.0f}, first "
            f"inference {cold.get('first_inference_ms', 0):.1f})"
        )
    lines.append(f"  {out / z['template']}  (sam deploy --template-file ...)")
    return "\n".join(lines)


@click.group("deploy")
def deploy() -> None:
    """Deploy a built bundle (needs the 'aws' extra: boto3)."""


@deploy.command("lambda")
@click.argument("zip_or_out", metavar="OUT_OR_ZIP", type=click.Path(path_type=Path))
@click.option("--function-name", required=True, help="Lambda function to create or update.")
@click.option("--role-arn", required=True, help="Execution role ARN (used when creating).")
@click.option("--region", default="us-east-1", show_default=True)
@click.option("--memory-mb", type=click.IntRange(128, 10240), default=1024, show_default=True)
@click.option("--timeout-s", type=click.IntRange(1, 900), default=30, show_default=True)
@click.option("--endpoint-url", help="Another Lambda API endpoint (LocalStack, moto).")
@json_option
@handle_errors
def deploy_lambda_cmd(
    zip_or_out: Path,
    function_name: str,
    role_arn: str,
    region: str,
    memory_mb: int,
    timeout_s: int,
    endpoint_url: str | None,
    as_json: bool,
) -> None:
    """Create or update FUNCTION from OUT_OR_ZIP (a lambda-*.zip or the folder holding it)."""

    result = deploy_lambda(
        zip_or_out,
        function_name,
        role_arn,
        region=region,
        memory_mb=memory_mb,
        timeout_s=timeout_s,
        endpoint_url=endpoint_url,
    )
    if as_json:
        emit_json(result)
    else:
        click.echo(
            f"{result['action']} {result['function_arn']} ({result['runtime']}, "
            f"{', '.join(result['architectures'])}, {result['memory_mb']} MB, "
            f"{result['timeout_s']} s, code {result['code_size']} bytes)"
        )


COMMANDS = [package, deploy]
