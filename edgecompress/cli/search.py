"""``compress search``: the cheapest deployment of a recipe that passes its gates (Optuna)."""

from __future__ import annotations

from pathlib import Path

import click

from edgecompress.cli.common import (
    count_option,
    emit_json,
    force_option,
    handle_errors,
    json_option,
)
from edgecompress.errors import CompressError, GateError
from edgecompress.progress import is_quiet
from edgecompress.search.render import summary
from edgecompress.search.runner import run_search


def _verdict(result) -> None:
    """Exit 3 naming the closest trial when none passed; exit 1 when none was measured."""
    doc = result.doc
    if doc["best"] is not None:
        return
    by_number = {r["number"]: r for r in doc["trials"]}
    if doc["closest"] is not None:
        r = by_number[doc["closest"]]
        where = f" ({result.out / r['run_dir']})" if r.get("run_dir") else ""
        raise GateError(
            f"no trial passed every gate ({len(doc['trials'])} trials); closest: trial "
            f"{r['number']}{where}: {r['reason']}",
            r["gates"],
        )
    failed = [r for r in doc["trials"] if r["reason"]][:3]
    reasons = "; ".join(f"trial {r['number']}: {r['status']}: {r['reason']}" for r in failed)
    raise CompressError(
        f"no trial was measured ({len(doc['trials'])} trials){': ' + reasons if reasons else ''}"
    )


@click.command()
@click.argument("recipe", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path),
    required=True,
    help="The search's folder: its study, trials and reports. Rerunning the same command with "
    "the same OUT resumes the study.",
)
@count_option("trials", 20, "Trials in the study in all (a rerun continues the count).")
@count_option("workers", 1, "Worker processes on this machine, sharing the study.")
@click.option(
    "--storage",
    help="Where the study lives (default: OUT/study.journal): a journal file path (e.g. on a "
    "shared file system) or an Optuna RDB URL (sqlite:///F.db, postgresql://...). Searches on "
    "several machines with the same recipe and storage share one study.",
)
@click.option(
    "--timeout",
    "timeout_s",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds after which no new trial starts (running ones finish).",
)
@click.option("--study", "study_name", help="Study name (default: recipe name + fingerprint).")
@force_option
@json_option
@handle_errors
def search(
    recipe: Path,
    out: Path,
    trials: int,
    workers: int,
    storage: str | None,
    timeout_s: float | None,
    study_name: str | None,
    force: bool,
    as_json: bool,
) -> None:
    """Search RECIPE's `search:` space for the cheapest deployment (estimated $ per million
    Lambda invocations) that passes every gate; write trials.json, report.md, report.html and
    best.yaml into OUT.

    Each trial is `compress run` of the recipe with the trial's values; the study is Optuna
    (NSGA-II for several objectives, TPE for one). Exit 0 with best.yaml; 3 when no trial
    passed every gate (the closest is named); 1 when no trial could be measured.
    """

    result = run_search(
        recipe, out, trials, workers, storage, timeout_s, study_name, force, is_quiet()
    )
    doc = result.doc
    if as_json:
        public = {k: v for k, v in doc.items() if k != "trials"}
        emit_json(
            {
                **public,
                "out": str(out),
                "files": {k: str(v) for k, v in result.files.items()},
                "trials": [{k: v for k, v in r.items() if k != "recipe"} for r in doc["trials"]],
            }
        )
    else:
        click.echo(f"search    {summary({**doc, 'by_number': _numbers(doc)})}")
        for name in ("best.yaml", "report.md", "report.html", "trials.json"):
            if name in result.files:
                click.echo(f"{'output':<9} {result.files[name]}")
    _verdict(result)


def _numbers(doc: dict) -> dict:
    return {r["number"]: r for r in doc["trials"]}


COMMANDS = [search]
