"""Runs a recipe: load -> compressors -> exporters -> bundles -> bench -> report -> gates."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress import __version__, loaders
from edgecompress.context import RunContext
from edgecompress.data import load_dataset
from edgecompress.errors import CompressorError, GateError
from edgecompress.exporters.base import ExportedModel
from edgecompress.model import ModelBundle, StepRecord
from edgecompress.outdir import atomic_dir, sha256_file
from edgecompress.progress import log
from edgecompress.recipe import Recipe
from edgecompress.registry import COMPRESSORS, EXPORTERS
from edgecompress.stages import package_and_report


@dataclass
class RunResult:
    out: Path
    manifest: dict
    bundle: ModelBundle
    variants: list[ExportedModel] = field(default_factory=list)
    report: dict | None = None
    failed_gates: list[dict] = field(default_factory=list)


def load_bundle(recipe: Recipe) -> ModelBundle:

    m, task, base = recipe.model, recipe.task.spec(), recipe.base_dir
    if m.factory:
        return loaders.load_factory(m.factory, m.weights, task, base, m.factory_args, m.inputs)
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


def run_exports(recipe: Recipe, bundle: ModelBundle, ctx: RunContext, work: Path):
    variants: list[ExportedModel] = []
    for name, config in recipe.export_configs:
        start = time.perf_counter()
        produced = EXPORTERS.get(name).handler(bundle, config, ctx, work)
        seconds = round(time.perf_counter() - start, 3)
        for variant in produced:
            variant.details.setdefault("seconds", seconds)
        variants.extend(produced)
    return variants


def build_manifest(recipe: Recipe, bundle, ctx, work: Path, variants, extra: dict) -> dict:
    files = {
        str(p.relative_to(work)): sha256_file(p)
        for p in sorted(work.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }
    return {
        "schema_version": 1,
        "tool": {"name": "edgecompress", "version": __version__},
        "recipe": str(recipe.path) if recipe.path else None,
        "model": bundle.source,
        "task": bundle.task.to_dict(),
        "io": bundle.io.to_dict(),
        "baseline": ctx.baseline,
        "steps": [s.to_dict() for s in bundle.history],
        "final": {"params": bundle.param_count(), "metric": extra.get("final_metric")},
        "variants": [v.to_dict(work) for v in variants],
        "files": files,
        **{k: v for k, v in extra.items() if k != "final_metric"},
    }


def run_recipe(recipe: Recipe, out: Path, force: bool = False) -> RunResult:
    """Run ``recipe`` into ``out`` atomically. Raises GateError (exit 3) after writing OUT."""
    with atomic_dir(out, force) as work:
        bundle = load_bundle(recipe)
        data = load_dataset(recipe.task.data, seed=recipe.seed)
        ctx = RunContext(data, work, recipe.seed, recipe.task.eval_samples, recipe)
        ctx.set_baseline(bundle)
        original = bundle.replace()
        for name, config in recipe.step_configs:
            bundle = run_step(name, config, bundle, ctx)
        final_metric = ctx.evaluate_bundle(bundle) if bundle.module is not None else None
        model_files = save_model(bundle, work)
        variants = run_exports(recipe, bundle, ctx, work)
        extra = {"final_metric": final_metric, "model_files": model_files}
        extra.update(_package_and_report(recipe, bundle, ctx, work, variants, original))
        manifest = build_manifest(recipe, bundle, ctx, work, variants, extra)
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    result = RunResult(out, manifest, bundle, variants, manifest.get("report"))
    result.failed_gates = [g for g in manifest.get("gates", []) if not g.get("passed", True)]
    if result.failed_gates:
        names = ", ".join(g["name"] for g in result.failed_gates)
        raise GateError(f"gates failed: {names} (outputs kept in {out})", manifest["gates"])
    return result


def _package_and_report(recipe, bundle, ctx, work, variants, original) -> dict:
    """Lambda zips, benchmarks, reports and gates."""

    return package_and_report(recipe, bundle, ctx, work, variants, original)
