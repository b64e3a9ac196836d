"""Pipeline hook: measure every exported variant (edgecompress.measure.suite), assemble
report.json, evaluate the gates and write report.json / report.md / report.html.

``benchmark_and_report(recipe, bundle, ctx, work_dir, variants, zips=None, original=None)``
is called by ``edgecompress.stages`` after the exporters (and the Lambda bundler) ran.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgecompress.measure import cost
from edgecompress.measure.suite import bench_settings, measure_variants
from edgecompress.progress import log
from edgecompress.recipe import BenchSection
from edgecompress.report import report
from edgecompress.report.gates import evaluate_gates


def benchmark_and_report(recipe, bundle, ctx, work_dir, variants, zips=None, original=None) -> dict:
    """Measure, price, gate and write report.{json,md,html} into ``work_dir``.

    Returns {"report": dict, "gates": list, "report_md": str}; it does not raise on a failed
    gate (call ``gates.raise_on_failure(result["gates"])``)."""
    settings = bench_settings(recipe)
    pricing = cost.load_pricing(_pricing_path(recipe, getattr(recipe, "cost", None)))
    measured = measure_variants(recipe, bundle, ctx, variants, list(zips or []), original, pricing)
    result = report.new_report(measured, [], **_report_meta(recipe, settings, pricing))
    result["gates"] = evaluate_gates(
        result, getattr(recipe, "gates", None), _baseline_report(recipe)
    )
    result["passed"] = all(g["passed"] for g in result["gates"])
    paths = report.write_report(result, Path(work_dir))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    return {"report": result, "gates": result["gates"], "report_md": paths["report_md"].read_text()}


def _baseline_report(recipe) -> dict | None:
    gates = getattr(recipe, "gates", None)
    if not gates or not gates.baseline_report:
        return None
    path = Path(gates.baseline_report)
    if not path.is_absolute():
        path = Path(getattr(recipe, "base_dir", Path.cwd())) / path
    return report.load_report(path)


def _pricing_path(recipe, section):
    if not section or not section.pricing:
        return None
    path = Path(section.pricing)
    return path if path.is_absolute() else Path(getattr(recipe, "base_dir", Path.cwd())) / path


def _report_meta(recipe, settings: BenchSection, pricing: dict) -> dict:
    keys = ("date", "source", "region", "usd_per_gb_second", "usd_per_million_requests")
    bench = json.loads(settings.model_dump_json())
    return {
        "name": getattr(recipe, "name", None),
        "settings": {
            **bench,
            "latency_threads": settings.threads[0] if settings.threads else 1,
            "inputs": "eval split (test) of the task's data",
        },
        "pricing": {k: pricing.get(k) for k in keys},
    }
