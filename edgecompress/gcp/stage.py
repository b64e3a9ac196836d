"""The pipeline's Google Cloud stage: a recipe's ``package.gcf`` / ``package.cloudrun``
bundles of the chosen export variant, then their estimated $ per million requests beside
Lambda's in report.json / report.md / report.html (same measured latency).
"""

from __future__ import annotations

from pathlib import Path

from edgecompress.awslambda.sizes import mib
from edgecompress.gcp.bundle import build_gcf
from edgecompress.gcp.cloudrun import build_cloudrun
from edgecompress.measure import cost_gcp
from edgecompress.progress import log
from edgecompress.report.report import write_report
from edgecompress.stages import choose_variant, relative_paths

BUILDERS = {"gcf": build_gcf, "cloudrun": build_cloudrun}


def build_target(kind: str, model: Path, io, task, work: Path, options, tokenizer_dir=None):
    """One bundle into ``work``, its paths recorded relative to work."""
    built = BUILDERS[kind](model, io, task, work, options, tokenizer_dir=tokenizer_dir)
    return relative_paths(built.to_dict(), work)


def package_gcp(recipe, bundle, work: Path, variants) -> dict:
    """{"gcf": [...], "cloudrun": [...]}: one bundle per section the recipe has."""
    result = {}
    for kind in BUILDERS:
        section = getattr(recipe.package, kind, None)
        if section is None or not variants:
            continue
        variant = choose_variant(variants, section.variant)
        log.info("packaging %s for %s / %s", variant.name, kind, section.runtime.value)
        built = build_target(
            kind,
            variant.path,
            variant.io,
            bundle.task,
            work,
            section.target(),
            bundle.tokenizer_dir,
        )
        result[kind] = [{**built, "variant": variant.name}]
    return result


def package_and_price(recipe, bundle, work: Path, variants, run: dict) -> dict:
    """The bundles, and (when the run wrote a report) each variant's cross-target costs."""
    built = package_gcp(recipe, bundle, work, variants)
    report = run.get("report")
    if built and report:
        price_targets(report, recipe, built)
        paths = write_report(report, work)
        return {**built, "report": report, "report_md": paths["report_md"].read_text()}
    return built


def _pricing(recipe) -> dict:
    section = getattr(recipe, "cost", None)
    override = getattr(section, "pricing_gcp", None)
    if override and not Path(override).is_absolute():
        override = Path(recipe.base_dir) / override
    return cost_gcp.load_pricing_gcp(override)


def price_targets(report: dict, recipe, built: dict) -> None:
    """Add ``target_costs`` (Lambda, Cloud Functions, Cloud Run rows and the cheapest) to every
    priced variant of ``report``, and the Google prices used to report["pricing_gcp"]."""
    pricing = _pricing(recipe)
    section = getattr(recipe, "cost", None)
    fraction = section.init_fraction if section else 0.01
    target = getattr(section, "p95_target_ms", None)
    for v in report["variants"]:
        one = (v.get("latency_by_threads") or {}).get("1")
        if v.get("role") == "baseline" or one is None:
            continue
        rows = cost_gcp.lambda_rows(v.get("cost_table") or [])
        for kind, bundles in built.items():
            options = getattr(recipe.package, kind)
            configs = getattr(cost_gcp, f"{kind}_configs")(
                options.memory_mib, options.vcpu, options.concurrency
            )
            init = _init_ms(v, bundles)
            rows += cost_gcp.target_rows(kind, one, configs, pricing, init, fraction)
        v["target_costs"] = {"rows": rows, **(cost_gcp.cheapest(rows, target) or {})}
    keys = (
        "date",
        "source",
        "date_note",
        "usd_per_vcpu_second",
        "usd_per_gib_second",
        "usd_per_million_requests",
        "billing_granularity_ms",
        "free_tier_per_month",
    )
    region = next(iter(built.values()))[0]["region"]
    report["pricing_gcp"] = {
        **{k: pricing.get(k) for k in keys},
        "region": cost_gcp.region_note(region, pricing),
    }


def _init_ms(variant: dict, bundles: list[dict]) -> float:
    """Start-up billed on a cold request: import + load measured under functions-framework
    for this variant's bundle, else the variant's own cold start."""
    for b in bundles:
        cold = (b.get("self_check") or {}).get("cold_start") or {}
        if b.get("variant") == variant["name"] and cold.get("import_ms") is not None:
            return cold["import_ms"] + cold.get("load_ms", 0.0)
    cold = variant.get("cold_start") or {}
    return (cold.get("import_ms") or 0.0) + (cold.get("load_ms") or 0.0)


def render_bundle(b: dict, out: Path) -> str:
    """What ``compress package gcf|cloudrun`` prints."""
    sizes, check = b["sizes"], b["self_check"]
    lines = [
        f"{out / b['path']}  ({b['kind']}, {b['runtime']}, {b['memory_mib']} MiB, "
        f"{b['cpu']:g} vCPU, concurrency {b['concurrency']})",
        f"  source {mib(sizes['source_bytes'])} ({mib(sizes['compressed_bytes'])} compressed; "
        f"model {mib(sizes['model_bytes'])}); with installed modules "
        f"{mib(sizes['total_uncompressed_bytes'])}",
        f"  requirements: {len(b['versions'])} pinned packages for {b['runtime']}",
    ]
    if "skipped" in check:
        lines.append(f"  self-check skipped: {check['skipped']}")
    else:
        burst = check["burst"]
        label = "passed" if check["mode"] == "full" else f"PARTIAL ({check['why']})"
        lines.append(
            f"  self-check {label}: {len(check['requests'])} requests under functions-framework"
            f" on 127.0.0.1, {burst['requests']} concurrent: {burst['errors']} errors"
        )
    lines += [f"  not checked: {item}" for item in b["not_checked"]]
    lines.append(
        f"  deploy: {' '.join(b['deploy'])}"
        if b["kind"] == "gcf"
        else f"  deploy: {' && '.join(b['deploy'])}"
    )
    return "\n".join(lines)
