"""``compress package lambda MODEL -o OUT``: an AWS Lambda deploy zip + SAM template."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import click
from pydantic import ValidationError

from edgecompress.awslambda.deploy import deploy_lambda, promote_alias, rollback_alias
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.awslambda.sizes import mib
from edgecompress.cli.common import emit_json, force_option, handle_errors, json_option, out_option
from edgecompress.gcp.stage import render_bundle
from edgecompress.gcp.target import CloudRunTarget, GcpTarget
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.pipeline import run_package_gcp, run_package_lambda
from edgecompress.recipe_messages import error_message


def target_option(name: str, model=LambdaTarget, **extra):
    """``--<name>`` for a LambdaTarget (or ``model``'s) field: its type, range, default and
    help come from the model (one spelling of each Lambda option)."""
    field = model.model_fields[name]
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
    if field.annotation is str:
        return click.STRING
    keys = ("gt", "ge", "lt", "le")
    bound = {k: getattr(m, k) for m in field.metadata for k in keys if hasattr(m, k)}
    floats = field.annotation is float or field.annotation == (float | None)
    ranged = click.FloatRange if floats else click.IntRange
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
@target_option("max_new_tokens")
@target_option("storage")
@click.option(
    "--task",
    type=click.Choice(["classification", "embedding", "regression", "generation"]),
    default="classification",
    show_default=True,
    help="What the model does (causal LMs exported by compress are recognised as generation "
    "from the ONNX file's metadata whatever this says).",
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
@click.option("--snapstart", is_flag=True, help=LambdaTarget.model_fields["snapstart"].description)
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
    if kind == "generation":
        return TaskSpec(kind=TaskKind.generation, data="sentences", metric="next_token_agreement")
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
    elif "emulated" in check:
        lines.append(
            f"  self-check passed under qemu (arm64): {len(check['events'])} events; no cold "
            "start measured under emulation"
        )
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


GCP_FLAGS = (
    "runtime",
    "region",
    "memory_mib",
    "cpu",
    "concurrency",
    "max_instances",
    "timeout_s",
    "budget_mib",
    "unzipped_budget_mib",
)


def gcp_options(model, flags: dict):
    """The flags validated through GcpTarget / CloudRunTarget (exit 2 naming the flag)."""
    try:
        return model.model_validate(flags)
    except ValidationError as exc:
        err = exc.errors()[0]
        if not err["loc"]:  # a rule across flags (--cpu with --concurrency, --memory-mib)
            raise click.UsageError(error_message(err)) from None
        name = str(err["loc"][0])
        flag = "--no-self-check" if name == "self_check" else "--" + name.replace("_", "-")
        raise click.BadParameter(error_message(err), param_hint=[flag]) from None


def _gcp_decorators(model) -> list:
    """The options of ``compress package gcf|cloudrun``, innermost first."""
    tasks = click.Choice(["classification", "embedding", "regression"])
    return [
        json_option,
        force_option,
        out_option(),
        click.option(
            "--allow-non-finite",
            is_flag=True,
            help=model.model_fields["allow_non_finite"].description,
        ),
        click.option(
            "--no-self-check", is_flag=True, help="Skip serving it under functions-framework."
        ),
        click.option(
            "--tokenizer",
            type=click.Path(path_type=Path, file_okay=False),
            help="Folder with tokenizer.json (text models).",
        ),
        click.option("--task", type=tasks, default="classification", show_default=True),
        *(target_option(n, model) for n in reversed(GCP_FLAGS)),
        click.argument("model_path", metavar="MODEL", type=click.Path(path_type=Path)),
    ]


def _gcp_command(kind: str, model, doc: str):
    """``compress package gcf|cloudrun``: flags from the target model's fields."""

    def command(model_path, task, tokenizer, no_self_check, allow_non_finite, out, force, **flags):
        as_json = flags.pop("as_json")
        flags = {k: v for k, v in flags.items() if v is not None}
        flags.update(self_check=not no_self_check, allow_non_finite=allow_non_finite)
        options = gcp_options(model, flags)
        manifest = run_package_gcp(kind, model_path, _task(task), options, out, force, tokenizer)
        if as_json:
            emit_json(manifest)
        else:
            click.echo(render_bundle(manifest[kind], out))

    command.__doc__ = doc
    command = handle_errors(command)
    for decorate in _gcp_decorators(model):
        command = decorate(command)
    return package.command(kind)(command)


_gcp_command(
    "gcf",
    GcpTarget,
    "Build OUT/gcf-<runtime>/ (a Cloud Functions 2nd-gen source folder), served for real "
    "under functions-framework, and manifest.json.",
)
_gcp_command(
    "cloudrun",
    CloudRunTarget,
    "Build OUT/cloudrun-<runtime>/ (Dockerfile, service.yaml and the same app), served for "
    "real under functions-framework.",
)


@click.group("deploy")
def deploy() -> None:
    """Deploy a built bundle (needs the 'aws' extra: boto3)."""


@deploy.command("lambda")
@click.argument(
    "zip_or_out", metavar="[OUT_OR_ZIP]", required=False, type=click.Path(path_type=Path)
)
@click.option("--function-name", required=True, help="Lambda function to create or update.")
@click.option("--role-arn", help="Execution role ARN (needed when uploading code).")
@click.option("--region", default="us-east-1", show_default=True)
@target_option("memory_mb")
@target_option("timeout_s")
@click.option("--endpoint-url", help="Another Lambda API endpoint (LocalStack, moto).")
@click.option("--alias", help="Publish a version and move this alias to it.")
@click.option(
    "--canary",
    metavar="PCT",
    type=click.FloatRange(0, 100, min_open=True, max_open=True),
    help="Route only PCT % of the alias's traffic to the new version (needs --alias).",
)
@click.option("--promote", is_flag=True, help="The alias's canary version takes all traffic.")
@click.option("--rollback", is_flag=True, help="Stop the canary, or restore the version before.")
@json_option
@handle_errors
def deploy_lambda_cmd(
    zip_or_out: Path | None,
    function_name: str,
    role_arn: str | None,
    region: str,
    memory_mb: int,
    timeout_s: int,
    endpoint_url: str | None,
    alias: str | None,
    canary: float | None,
    promote: bool,
    rollback: bool,
    as_json: bool,
) -> None:
    """Create or update FUNCTION from OUT_OR_ZIP (a lambda-*.zip or the folder holding it).

    \b
    A/B release:  --alias live --canary 10   new version gets 10 % of live's traffic
                  --alias live --promote     it gets all of it
                  --alias live --rollback    back to the version before
    """

    move = _alias_move(zip_or_out, role_arn, alias, canary, promote, rollback)
    client = {"region": region, "endpoint_url": endpoint_url}
    if move is not None:
        result = move(function_name, alias, **client)
    else:
        result = deploy_lambda(
            zip_or_out,
            function_name,
            role_arn,
            memory_mb=memory_mb,
            timeout_s=timeout_s,
            alias=alias,
            canary_percent=canary,
            **client,
        )
    if as_json:
        emit_json(result)
    else:
        click.echo(_render_deploy(result))


def _alias_move(zip_or_out, role_arn, alias, canary, promote, rollback):
    """promote_alias / rollback_alias when asked (None: upload code); usage errors exit 2."""
    if promote and rollback:
        raise click.UsageError("--promote and --rollback exclude each other")
    if (promote or rollback) and not alias:
        raise click.UsageError("--promote / --rollback need --alias NAME")
    if (promote or rollback) and (canary is not None or zip_or_out is not None):
        raise click.UsageError(
            "--promote / --rollback move the alias only: no OUT_OR_ZIP, --canary"
        )
    if promote or rollback:
        return promote_alias if promote else rollback_alias
    if zip_or_out is None:
        raise click.UsageError("Missing argument 'OUT_OR_ZIP'.")
    if canary is not None and not alias:
        raise click.UsageError("--canary needs --alias NAME")
    if not role_arn:
        raise click.UsageError("Missing option '--role-arn' (needed to upload code).")
    return None


def _render_deploy(result: dict) -> str:
    lines = []
    if "function_arn" in result:
        lines.append(
            f"{result['action']} {result['function_arn']} ({result['runtime']}, "
            f"{', '.join(result['architectures'])}, {result['memory_mb']} MB, "
            f"{result['timeout_s']} s, code {result['code_size']} bytes)"
        )
    state = result.get("alias")
    if state:
        routes = ", ".join(f"version {v}: {w:.0%}" for v, w in state["routing"].items())
        head = f"published version {result['version']}; " if "version" in result else ""
        lines.append(
            f"{head}alias {state['name']} -> version {state['function_version']}"
            + (f" (canary {routes})" if routes else " (all traffic)")
            + (
                f"; rollback target: version {state['previous_version']}"
                if state["previous_version"]
                else ""
            )
        )
        if "function_arn" not in result:
            lines.insert(0, f"{result['action']} alias {state['name']}")
    return "\n".join(lines)


COMMANDS = [package, deploy]
