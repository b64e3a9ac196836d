"""The ``compress`` command. Thin: parse, call the library, print, map errors to exit codes.

Exit codes: 0 success; 1 a step failed; 2 usage error (bad flag, invalid recipe);
3 a release gate failed. Machine output (--json) on stdout; logs and progress on stderr.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from edgecompress import __version__
from edgecompress.cli import bench as bench_cmd
from edgecompress.cli import doctor as doctor_cmd
from edgecompress.cli import export as export_cmd
from edgecompress.cli import package as package_cmd
from edgecompress.cli import search as search_cmd
from edgecompress.cli.common import (  # noqa: F401 (re-exported for plugins and tests)
    DomainError,
    emit_json,
    force_option,
    handle_errors,
    json_option,
    load_model_arg,
    out_option,
)
from edgecompress.errors import GateError, Interrupted, OutputExistsError
from edgecompress.inspect_model import render, summarize
from edgecompress.outdir import written_by_us
from edgecompress.pipeline import run_recipe
from edgecompress.progress import setup_logging
from edgecompress.recipe import load_recipe
from edgecompress.registry import COMPRESSORS, EXPORTERS
from edgecompress.summary import render_run

REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="compress")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or info logs.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs on stderr.")
def cli(debug: bool, quiet: bool, verbose: bool) -> None:
    """Compress trained models, export them to ONNX / TFLite, pack AWS Lambda zips, and
    measure latency, cold start, accuracy and $ per million invocations.

    \b
    Start with:   compress demo
    A recipe:     compress run recipes/digits.yaml -o out/
    What exists:  compress list

    Exit codes: 0 ok, 1 a step failed, 2 usage error / invalid recipe, 3 a gate failed.
    """

    as_json = "--json" in sys.argv
    setup_logging(verbose=verbose, quiet=quiet or as_json)


@cli.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@out_option(required=False)
@force_option
@json_option
@handle_errors
def run(recipe: Path, out: Path | None, force: bool, as_json: bool) -> None:
    """Run RECIPE (YAML) end to end into OUT (default: ./out/<recipe name>)."""

    parsed = load_recipe(recipe)
    out = out or Path("out") / (parsed.name or recipe.stem)
    _run_and_print(parsed, out, force, as_json)


def _run_and_print(recipe, out: Path, force: bool, as_json: bool) -> None:
    try:
        result = run_recipe(recipe, out, force)
    except GateError as exc:
        manifest_path = out / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        if as_json:
            emit_json(manifest)
        else:
            click.echo(render_run(manifest, out))
        raise exc
    if as_json:
        emit_json(result.manifest)
    else:
        click.echo(render_run(result.manifest, out))


@cli.command()
@out_option(required=False, default="demo-out")
@json_option
@handle_errors
def demo(out: Path, as_json: bool) -> None:
    """Run recipes/digits.yaml end to end: train-free (weights ship), no arguments needed.

    A previous demo output in OUT is replaced; any other existing folder is refused.
    """

    recipe_path = REPO_RECIPES / "digits.yaml"
    if not recipe_path.exists():
        raise click.ClickException(f"demo recipe not found at {recipe_path} (install with pip -e)")
    if (out.exists() or out.is_symlink()) and not (out.is_dir() and written_by_us(out)):
        kind = "a folder" if out.is_dir() else "a file"
        raise OutputExistsError(
            f"-o {out}: {kind} that is not a previous demo output (no manifest.json written by "
            "edgecompress); choose another -o (nothing was changed)"
        )
    _run_and_print(load_recipe(recipe_path), out, True, as_json)


@cli.command("list")
@json_option
@handle_errors
def list_(as_json: bool) -> None:
    """Compressors and exporters, built-in and plugins, with their config fields."""

    rows = []
    for registry in (COMPRESSORS, EXPORTERS):
        for e in registry.entries():
            fields = list(e.config_cls.model_fields)
            rows.append(
                {
                    "kind": e.kind,
                    "name": e.name,
                    "origin": e.origin,
                    "summary": e.summary,
                    "fields": fields,
                }
            )
        for name, err in registry.plugin_errors.items():
            rows.append(
                {
                    "kind": registry.kind,
                    "name": name,
                    "origin": "plugin (broken)",
                    "summary": err,
                    "fields": [],
                }
            )
    if as_json:
        emit_json(rows)
        return
    for r in rows:
        click.echo(f"{r['kind']:<11} {r['name']:<10} {r['origin']:<14} {r['summary']}")
        if r["fields"]:
            click.echo(f"{'':<37}fields: {', '.join(r['fields'])}")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--factory", help="'pkg.module:function' when MODEL is a state_dict file.")
@json_option
@handle_errors
def inspect(model: Path, factory: str | None, as_json: bool) -> None:
    """Parameters, size, ops and IO spec of MODEL: .onnx, .pt2, a HF folder, a recipe .yaml,
    or a state_dict with --factory."""

    summary = summarize(load_model_arg(model, factory, examples=False))
    if as_json:
        emit_json(summary)
    else:
        click.echo(render(summary))


for _module in (export_cmd, package_cmd, bench_cmd, search_cmd, doctor_cmd):
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def _interrupt(signum: int, frame) -> None:
    raise Interrupted(signum)


def main() -> None:
    """The console script: SIGTERM and SIGHUP unwind like Ctrl-C, so every temp folder and
    child process is cleaned up, then exit 128 + the signal number (143 for SIGTERM)."""
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _interrupt)
    try:
        cli(prog_name="compress")
    except Interrupted as exc:
        click.echo(f"compress: {exc}; temporary files removed", err=True)
        sys.exit(exc.exit_code)
