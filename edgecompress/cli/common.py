"""Helpers every ``compress`` command shares: error mapping, options, JSON output."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import click

from edgecompress.errors import CompressError
from edgecompress.loaders import load_path
from edgecompress.model import TaskSpec
from edgecompress.pipeline import load_bundle
from edgecompress.recipe import load_recipe


class DomainError(click.ClickException):
    """A CompressError shown as one paragraph, with its documented exit code."""

    def __init__(self, error: CompressError):
        super().__init__(str(error))
        self.exit_code = error.exit_code


def handle_errors(fn):
    """Turn domain errors into their exit codes; no traceback unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        debug = click.get_current_context().find_root().params.get("debug")
        try:
            return fn(*args, **kwargs)
        except CompressError as exc:
            if debug:
                raise
            raise DomainError(exc) from None
        except (click.ClickException, click.exceptions.Exit, KeyboardInterrupt):
            raise
        except Exception as exc:  # a bug or an unexpected library error: still one paragraph
            if debug:
                raise
            first = (str(exc).strip().splitlines() or [""])[0]
            raise click.ClickException(
                f"unexpected {type(exc).__name__}: {first} (run 'compress --debug ...' for the "
                "traceback)"
            ) from None

    return wrapper


def json_option(fn):
    return click.option(
        "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
    )(fn)


def out_option(required: bool = True, default: str | None = None):
    """-o/--out; a required one must not pass default= (click then stops enforcing it)."""
    extra = {"required": True} if required else {"default": default}
    return click.option(
        "-o",
        "--out",
        type=click.Path(path_type=Path),
        **extra,
        help="Output folder (built atomically; an existing one is refused without --force).",
    )


def count_option(name: str, default: int, help: str):
    """``--name N``: a whole number >= 1 with a shown default (runs, trials, workers ...)."""
    return click.option(
        f"--{name}", type=click.IntRange(min=1), default=default, show_default=True, help=help
    )


def force_option(fn):
    return click.option("--force", is_flag=True, help="Replace an existing output folder.")(fn)


def strict_json(value):
    """``value`` with every NaN or infinite float as null: what JSON readers accept."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def emit_json(document) -> None:
    """One strict JSON document on stdout (never bare NaN or Infinity)."""
    text = json.dumps(document, indent=2, default=str)  # default=str turns paths etc. to text
    click.echo(json.dumps(strict_json(json.loads(text)), indent=2, allow_nan=False))


def load_model_arg(model: Path, factory: str | None = None, task=None, examples: bool = True):
    """MODEL as the CLI takes it: a recipe (its model), or a file/folder loaders can guess."""

    if model.suffix in (".yaml", ".yml"):
        return load_bundle(load_recipe(model))
    return load_path(model, task or TaskSpec(), factory, examples)
