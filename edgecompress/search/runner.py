"""``compress search``: OUT, the study, the workers, the outputs.

OUT is the study's home, and persists: a search is resumed by rerunning the same command, so
OUT cannot be built in a temp folder and renamed at the end like ``compress run``'s. Instead:

- OUT is created atomically (``atomic_dir``: the same refusals of unsafe places) holding only
  ``manifest.json``, which names the command, the recipe's fingerprint, the study and storage;
- an existing OUT is resumed when its manifest is a search of the same recipe (same
  fingerprint, same storage); any other existing OUT is refused (exit 2), and ``--force``
  starts over (only in an OUT edgecompress wrote, as ``compress run --force``);
- every file in OUT is complete whenever it is seen: the study's journal is append-only, each
  trial's run folder is made atomically by ``compress run``, and trials.json / report.md /
  report.html / best.yaml / manifest.json are written to a temp name and renamed.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress import __version__
from edgecompress.errors import CompressError, OutputExistsError, RecipeError
from edgecompress.outdir import atomic_dir, check_location, sha256_file, written_by_us
from edgecompress.pipeline import recipe_inputs
from edgecompress.progress import log
from edgecompress.recipe import load_recipe, read_yaml
from edgecompress.report.report import atomic_write
from edgecompress.search import render
from edgecompress.search.storage import StorageSpec, resolve_storage
from edgecompress.search.study import Job, counted, open_study, run_workers, sweep_stale

MANIFEST = "manifest.json"
OUTPUTS = ("trials.json", "report.md", "report.html", "best.yaml")


@dataclass
class SearchResult:
    out: Path
    doc: dict
    files: dict[str, Path]
    ran: int  # trials counted before this run -> after
    resumed: bool
    worker_codes: list[int] = field(default_factory=list)


def fingerprint(data: dict) -> str:
    """The recipe's identity: its content (comments and key order aside)."""
    text = json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _manifest(out: Path) -> dict:
    try:
        doc = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def write_manifest(out: Path, doc: dict) -> None:
    files = {n: sha256_file(out / n) for n in OUTPUTS if (out / n).is_file()}
    tool = {"name": "edgecompress", "version": __version__}
    atomic_write(
        out / MANIFEST,
        json.dumps({"schema_version": 1, "tool": tool, **doc, "files": files}, indent=2) + "\n",
    )


def prepare_out(out: Path, force: bool, doc: dict, protect) -> bool:
    """Create OUT (atomically) or accept it for resuming; True when resuming."""
    location = check_location(out, protect)
    if location.exists() and not force:
        old = _manifest(location) if written_by_us(location) else {}
        if old.get("command") != "search":
            raise OutputExistsError(
                f"{out} exists and is not a search output; choose another -o, or pass --force "
                "to replace it (nothing was changed)"
            )
        if old.get("fingerprint") != doc["fingerprint"]:
            raise OutputExistsError(
                f"{out} holds a search of another recipe (or another version of it: "
                f"{old.get('recipe')}); choose another -o, or pass --force to start over "
                "(its trials are deleted; nothing was changed)"
            )
        if old.get("storage") != doc["storage"]:
            raise RecipeError(
                f"{out}: its study lives in --storage {old.get('storage')}; pass that storage "
                f"to resume it (got {doc['storage']})"
            )
        return True
    with atomic_dir(out, force, protect) as work:
        write_manifest(work, doc)
    return False


def _meta(recipe, job: Job) -> dict:
    return {
        "name": recipe.name or Path(job.source).stem,
        "recipe": job.source,
        "study": job.study_name,
        "storage": job.storage.shown,
        "objectives": [o.value for o in recipe.search.objectives],
        "space": recipe.search.space,
        "gates": {k: v for k, v in recipe.gates.model_dump().items() if v is not None},
    }


def render_outputs(study, recipe, job: Job) -> tuple[dict, dict[str, Path]]:
    out = Path(job.out)
    doc = render.build_doc(study.get_trials(deepcopy=False), _meta(recipe, job))
    files = render.write_outputs(out, doc, recipe.base_dir)
    return doc, files


def run_search(
    path: Path,
    out: Path,
    trials: int,
    workers: int = 1,
    storage: str | None = None,
    timeout_s: float | None = None,
    study_name: str | None = None,
    force: bool = False,
    quiet: bool = False,
) -> SearchResult:
    """Run (or resume) the search of the recipe at ``path`` into ``out``."""
    recipe = load_recipe(path)
    if recipe.search is None:
        raise RecipeError(
            f"{path}: search: missing; compress search needs a search section "
            "(space, objectives): see README 'Search'"
        )
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise CompressError(
            "compress search needs Optuna: pip install 'edgecompress[search]'"
        ) from None
    data = read_yaml(path)
    fp = fingerprint(data)
    spec: StorageSpec = resolve_storage(storage, out)
    name = study_name or f"{recipe.name or Path(path).stem}-{fp[:10]}"
    doc = {
        "command": "search",
        "recipe": str(path),
        "fingerprint": fp,
        "study": name,
        "storage": spec.shown,
    }
    resumed = prepare_out(out, force, doc, recipe_inputs(recipe))
    deadline = time.time() + timeout_s if timeout_s else None
    job = Job(
        data,
        str(path),
        str(Path(path).resolve().parent),
        str(Path(out).resolve()),
        spec,
        name,
        trials,
        deadline,
        quiet,
    )
    study = open_study(job, recipe, fp)
    swept = sweep_stale(study)
    if swept:
        log.info("trials %s were interrupted earlier: their values are queued again", swept)
    before = counted(study.get_trials(deepcopy=False))
    todo = max(0, trials - before)
    log.info(
        "search %s (%s): %d of %d trials done%s; %s",
        name,
        spec.shown,
        before,
        trials,
        " (resumed)" if resumed else "",
        f"{min(workers, todo)} worker(s)" if todo else "nothing to run",
    )
    codes: list[int] = []
    try:
        if todo:
            codes = run_workers(job, min(workers, todo))
            for i, code in enumerate(codes):
                if code:
                    log.warning("worker %d stopped with exit code %s (see above)", i, code)
    finally:
        doc_out, files = render_outputs(study, recipe, job)
        write_manifest(Path(out), doc)
    after = counted(study.get_trials(deepcopy=False))
    return SearchResult(Path(out), doc_out, files, after - before, resumed, codes)
