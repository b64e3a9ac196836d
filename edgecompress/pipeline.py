"""Runs a recipe: load -> compressors -> exporters -> bundles -> bench -> report -> gates."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress import __version__, loaders
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.context import RunContext
from edgecompress.data import DataSplits, check_fits, first_sample, load_dataset
from edgecompress.errors import CompressorError, DataFileError, GateError
from edgecompress.exporters.base import ExportedModel
from edgecompress.gcp import stage as gcp_stage
from edgecompress.model import ModelBundle, StepRecord
from edgecompress.outdir import atomic_dir, sha256_file
from edgecompress.progress import log
from edgecompress.recipe import Recipe
from edgecompress.registry import COMPRESSORS, EXPORTERS
from edgecompress.stages import file_io, package_and_report, package_file


@dataclass
class RunResult:
    out: Path
    manifest: dict
    bundle: ModelBundle
    variants: list[ExportedModel] = field(default_factory=list)
    report: dict | None = None
    failed_gates: list[dict] = field(default_factory=list)


def load_task_data(recipe: Recipe) -> DataSplits:
    """The recipe's dataset, read and checked before any work starts (a malformed file is a
    DataFileError, exit 2, naming the recipe, the file and the field)."""
    try:
        return load_dataset(recipe.task.data, seed=recipe.seed)
    except DataFileError as exc:
        raise DataFileError(f"{recipe.path or '<recipe>'}: task.data: {exc}") from None


def load_bundle(recipe: Recipe, data: DataSplits | None = None) -> ModelBundle:
    """The recipe's model; a factory without declared inputs takes its input spec from the
    first sample of ``data`` (loaded here when not given), with a dynamic batch dim."""
    m, task, base = recipe.model, recipe.task.spec(), recipe.base_dir
    if m.factory:

        def sample():
            return first_sample(data if data is not None else load_task_data(recipe))

        return loaders.load_factory(
            m.factory, m.weights, task, base, m.factory_args, m.inputs, sample=sample
        )
    if m.pt2:
        return loaders.load_pt2(loaders.resolve_path(m.pt2, base), task)
    if m.hf:
        return loaders.load_hf(loaders.resolve_path(m.hf, base), task)
    return loaders.load_onnx(loaders.resolve_path(m.onnx, base), task)


def run_step(name: str, config, bundle: ModelBundle, ctx: RunContext) -> ModelBundle:
    entry = COMPRESSORS.get(name)
    if bundle.module is None:
        raise CompressorError(f"{name}: needs a PyTorch model; this one was loaded from ONNX")
    log.info("step %s: %s", name, config.model_dump_json())
    params_before, start = bundle.param_count(), time.perf_counter()
    new_bundle, stats = entry.handler(bundle, config, ctx)
    seconds = round(time.perf_counter() - start, 3)
    stats = {"params_before": params_before, "params_after": new_bundle.param_count(), **stats}
    record = StepRecord(name, json.loads(config.model_dump_json()), stats, seconds)
    new_bundle.history.append(record)
    return new_bundle


def save_model(bundle: ModelBundle, work: Path) -> dict[str, str]:
    """The compressed torch model: state_dict always, a torch.export program when it traces."""
    import torch

    files = {}
    if bundle.module is None:
        return files
    torch.save(bundle.module.state_dict(), work / "model.pt")
    files["model.pt"] = sha256_file(work / "model.pt")
    try:
        args = tuple(torch.from_numpy(bundle.example_inputs[n]) for n in bundle.io.input_names)
        torch.export.save(torch.export.export(bundle.module, args), str(work / "model.pt2"))
        files["model.pt2"] = sha256_file(work / "model.pt2")
    except Exception as exc:  # not every model traces; the state_dict is still there
        log.warning("model.pt2 not written: torch.export failed: %s", str(exc).splitlines()[0])
    return files


def run_exporter(name: str, config, bundle: ModelBundle, ctx: RunContext, work: Path):
    """One exporter into ``work``; each variant records the exporter's seconds."""
    start = time.perf_counter()
    produced = EXPORTERS.get(name).handler(bundle, config, ctx, work)
    seconds = round(time.perf_counter() - start, 3)
    for variant in produced:
        variant.details.setdefault("seconds", seconds)
    return produced


def run_exports(recipe: Recipe, bundle: ModelBundle, ctx: RunContext, work: Path):
    variants: list[ExportedModel] = []
    for name, config in recipe.export_configs:
        variants.extend(run_exporter(name, config, bundle, ctx, work))
    return variants


def write_manifest(work: Path, doc: dict) -> dict:
    """Write ``work/manifest.json`` (via a temp name and os.replace): schema_version, tool,
    ``doc``, and the sha256 of every other file under ``work``. Returns what was written."""
    files = {
        p.relative_to(work).as_posix(): sha256_file(p)
        for p in sorted(work.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", ".manifest.json.partial")
    }
    tool = {"name": "edgecompress", "version": __version__}
    manifest = {"schema_version": 1, "tool": tool, **doc, "files": files}
    partial = work / ".manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=2, default=str))
    os.replace(partial, work / "manifest.json")
    return manifest


def build_manifest(recipe: Recipe, bundle, ctx, work: Path, variants, extra: dict) -> dict:
    """What a run records (write_manifest adds schema_version, tool and files)."""
    return {
        "recipe": str(recipe.path) if recipe.path else None,
        "model": bundle.source,
        "task": bundle.task.to_dict(),
        "io": bundle.io.to_dict(),
        "baseline": ctx.baseline,
        "steps": [s.to_dict() for s in bundle.history],
        "final": {"params": bundle.param_count(), "metric": extra.get("final_metric")},
        "variants": [v.to_dict(work) for v in variants],
        **{k: v for k, v in extra.items() if k != "final_metric"},
    }


def run_export(
    fmt: str, bundle, config, out: Path, force: bool, data: str | None, protect=()
) -> dict:
    """``compress export``: one exporter into ``out`` atomically (never over the inputs in
    ``protect``); returns the manifest."""
    with atomic_dir(out, force, protect) as work:
        ctx = RunContext(load_dataset(data or bundle.task.data), work)
        start = time.perf_counter()
        variants = run_exporter(fmt, config, bundle, ctx, work)
        doc = {
            "command": "export",
            "format": fmt,
            "model": bundle.source,
            "task": bundle.task.to_dict(),
            "config": json.loads(config.model_dump_json()),
            "baseline": ctx.baseline,
            "seconds": round(time.perf_counter() - start, 3),
            "variants": [v.to_dict(work) for v in variants],
        }
        return write_manifest(work, doc)


def run_package_lambda(
    model: Path, task, options: LambdaTarget, out: Path, force: bool, tokenizer_dir=None
) -> dict:
    """``compress package lambda``: one zip + template.yaml into ``out`` atomically (never
    over the model or the tokenizer); returns the manifest."""
    io = file_io(model, task)  # a bad model is refused before OUT is looked at
    inputs = [model] + ([tokenizer_dir] if tokenizer_dir else [])
    with atomic_dir(out, force, inputs) as work:
        doc = {
            "command": "package lambda",
            "model": {"path": str(model), "sha256": sha256_file(model)},
            "memory_mb": options.memory_mb,
            "timeout_s": options.timeout_s,
            "options": options.model_dump(mode="json"),
            "lambda": package_file(model, io, task, work, options, tokenizer_dir),
        }
        return write_manifest(work, doc)


def run_package_gcp(
    kind: str, model: Path, task, options, out: Path, force: bool, tokenizer_dir=None
) -> dict:
    """``compress package gcf|cloudrun``: one bundle folder into ``out`` atomically (never
    over the model or the tokenizer); returns the manifest."""
    io = file_io(model, task)
    inputs = [model] + ([tokenizer_dir] if tokenizer_dir else [])
    with atomic_dir(out, force, inputs) as work:
        doc = {
            "command": f"package {kind}",
            "model": {"path": str(model), "sha256": sha256_file(model)},
            "options": options.model_dump(mode="json"),
            kind: gcp_stage.build_target(kind, model, io, task, work, options, tokenizer_dir),
        }
        return write_manifest(work, doc)


def recipe_inputs(recipe: Recipe) -> list[Path]:
    """The user's files a run reads (OUT may never hold them): the recipe and its model."""
    m = recipe.model
    refs = [
        r
        for r in (m.weights, m.pt2, m.hf, m.onnx)
        if r and not r.startswith(loaders.PACKAGE_PREFIX)
    ]
    paths = [loaders.resolve_path(r, recipe.base_dir) for r in refs]
    return [p for p in [recipe.path, *paths] if p is not None]


def run_recipe(recipe: Recipe, out: Path, force: bool = False) -> RunResult:
    """Run ``recipe`` into ``out`` atomically. Raises GateError (exit 3) after writing OUT."""
    # a bad data file is refused before OUT is touched; a HF folder without task.data gets its
    # family's built-in default (text: sentences, images: digits), chosen by the loader
    family_default = recipe.model.hf and "data" not in recipe.task.model_fields_set
    data = None if family_default else load_task_data(recipe)
    with atomic_dir(out, force, protect=recipe_inputs(recipe)) as work:
        bundle = load_bundle(recipe, data)
        if data is None:
            data = load_dataset(bundle.task.data, seed=recipe.seed)
        check_fits(bundle, data, f"{recipe.path or '<recipe>'}: task.data")
        ctx = RunContext(data, work, recipe.seed, recipe.task.eval_samples, recipe)
        ctx.set_baseline(bundle)
        original = bundle.replace()
        for name, config in recipe.step_configs:
            bundle = run_step(name, config, bundle, ctx)
        final_metric = ctx.evaluate_bundle(bundle) if bundle.module is not None else None
        model_files = save_model(bundle, work)
        variants = run_exports(recipe, bundle, ctx, work)
        extra = {"final_metric": final_metric, "model_files": model_files}
        # a step that changes the task (classifier_head) resets the baseline model in ctx
        baseline_model = ctx.original or original
        extra.update(package_and_report(recipe, bundle, ctx, work, variants, baseline_model))
        extra.update(gcp_stage.package_and_price(recipe, bundle, work, variants, extra))
        manifest = write_manifest(work, build_manifest(recipe, bundle, ctx, work, variants, extra))
    result = RunResult(out, manifest, bundle, variants, manifest.get("report"))
    result.failed_gates = [g for g in manifest.get("gates", []) if not g.get("passed", True)]
    if result.failed_gates:
        names = ", ".join(g["name"] for g in result.failed_gates)
        raise GateError(f"gates failed: {names} (outputs kept in {out})", manifest["gates"])
    return result
