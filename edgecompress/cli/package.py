"""``compress package lambda MODEL -o OUT``: an AWS Lambda deploy zip + SAM template."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import click
from pydantic import ValidationError

from edgecompress.awslambda.deploy import deploy_lambda
from edgecompress.awslambda.sizes import mib
from edgecompress.cli.common import emit_json, force_option, handle_errors, json_option, out_option
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.pipeline import run_package_lambda
from edgecompress.recipe import LambdaTarget, error_message


def target_option(name: str, **extra):
    """``--<name>`` for a LambdaTarget field: its type, range, default and help come from the
    model (one spelling of each Lambda option)."""
    field = LambdaTarget.model_fields[name]
    default = field.default.value if isinstance(field.default, Enum) else field.default
    return click.option(
        "--" + name.replace("_", "-"),
        type=_click_type(field),
        default=default,
        show_default=True,
        help=field.description,
        **extra,
    )


def _click_type(field):
    if isinstance(field.annotation, type) and issubclass(field.annotation, Enum):
        return click.Choice([m.value for m in field.annotation])
    keys = ("gt", "ge", "lt", "le")
    bound = {k: getattr(m, k) for m in field.metadata for k in keys if hasattr(m, k)}
    ranged = click.FloatRange if field.annotation is float else click.IntRange
    return ranged(
        min=bound.get("gt", bound.get("ge")),
        max=bound.get("lt", bound.get("le")),
        min_open="gt" in bound,
        max_open="lt" in bound,
    )


def lambda_options(flags: dict) -> LambdaTarget:
    """The flags validated through LambdaTarget; an error is a usage error naming the flag."""
    try:
        return LambdaTarget.model_validate(flags)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        flag = "--no-self-check" if name == "self_check" else "--" + name.replace("_", "-")
        raise click.BadParameter(error_message(err), param_hint=[flag]) from None


@click.group("package")
def package() -> None:
    """Pack an exported model (.onnx / .tflite) into a deploy bundle."""


@package.command("lambda")
@click.argument("model", type=click.Path(path_type=Path))
@target_option("arch")
@target_option("python")
@target_option("budget_mib")
@target_option("unzipped_budget_mib")
@target_option("memory_mb")
@target_option("timeout_s")
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
@click.option(
    "--allow-non-finite",
    is_flag=True,
    help=LambdaTarget.model_fields["allow_non_finite"].description,
)
@out_option()
@force_option
@json_option
@handle_errors
def lambda_(
    model: Path,
    task: str,
    tokenizer: Path | None,
    no_self_check: bool,
    allow_non_finite: bool,
    out: Path,
    force: bool,
    as_json: bool,
    **flags,
) -> None:
    """Build OUT/lambda-<arch>-py<ver>.zip, template.yaml and manifest.json from MODEL."""

    options = lambda_options(
        {**flags, "self_check": not no_self_check, "allow_non_finite": allow_non_finite}
    )
    manifest = run_package_lambda(model, _task(task), options, out, force, tokenizer)
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
@target_option("memory_mb")
@target_option("timeout_s")
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
