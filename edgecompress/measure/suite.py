"""Benchmark every exported variant (and the Lambda zips built from it) and price it: one
report.json variant entry each (``measure_variants``). Assembling the report and evaluating
the gates is edgecompress.report.build's.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from edgecompress.awslambda.target import host_arch, target_interpreter
from edgecompress.measure import coldstart, cost, latency
from edgecompress.measure.memory import zip_sizes
from edgecompress.measure.samples import accuracy_samples
from edgecompress.recipe import BenchSection
from edgecompress.runtimes import TorchRunner, adapt_layout, open_layout_runner

QUICK_BENCH = BenchSection(runs=50, warmup=5, cold_start_runs=3)


def bench_settings(recipe) -> BenchSection:
    return getattr(recipe, "bench", None) or QUICK_BENCH


def default_event(feeds: dict[str, np.ndarray]) -> dict:
    """The handler event the benchmarks send: ``{"inputs": {name: nested lists}}``."""
    return {"inputs": {k: np.asarray(v).tolist() for k, v in feeds.items()}}


def latency_by_threads(open_fn, feeds_list, settings: BenchSection, name: str) -> dict[int, dict]:
    """{threads: latency summary}; 1 thread is always measured (the cost model needs it)."""
    out = {}
    for threads in sorted(set(settings.threads) | {1}):
        runner = open_fn(threads)
        out[threads] = latency.measure_latency(
            runner,
            feeds_list,
            settings.runs,
            settings.warmup,
            settings.time_budget_s,
            label=f"{name} x{threads} thread(s)",
        )
    return out


def _reported_latency(by_threads: dict[int, dict], settings: BenchSection) -> tuple[int, dict]:
    threads = settings.threads[0] if settings.threads else 1
    return threads, by_threads[threads]


def _accuracy(exported, ctx, bundle, runner) -> dict:
    """From the exporter's validation ``metric`` entry, else measured here."""
    metric = (exported.validation or {}).get("metric")
    if isinstance(metric, dict) and metric.get("value") is not None:
        keys = ("metric", "value", "baseline", "delta")
        return {k: metric.get(k) for k in keys}
    measured, _ = ctx.evaluate_runner(runner, bundle)
    baseline = (ctx.baseline or {}).get("value")
    delta = None if baseline is None else measured["value"] - baseline
    return {
        "metric": measured["metric"],
        "value": measured["value"],
        "baseline": baseline,
        "delta": delta,
    }


def _accuracy_samples(ctx, bundle, runner=None, outputs=None) -> dict | None:
    """Per-sample scores on the eval split (additive report.json field: compare's tests)."""
    if outputs is None and runner is not None:
        metric, outputs = ctx.evaluate_runner(runner, bundle)
    else:
        metric = ctx.baseline or {}
    split, reference = ctx.eval_split, ctx.reference_outputs
    kind = bundle.task.kind
    return accuracy_samples(metric.get("metric"), kind, outputs, split, reference)


def _cost_fields(by_threads, init_ms, archs, recipe, pricing) -> dict:
    memory = _memory_sizes(recipe)
    section = getattr(recipe, "cost", None)
    fraction = section.init_fraction if section else 0.01
    table = cost.cost_table(by_threads, memory, archs, pricing, init_ms, fraction)
    target = (section.p95_target_ms if section else None) or getattr(
        getattr(recipe, "gates", None), "max_p95_ms", None
    )
    fields = {"cost": cost.variant_cost(cost.recommend(table, target)), "cost_table": table}
    if getattr(_lambda_section(recipe), "snapstart", False):  # with / without, estimates
        requests = getattr(section, "requests_per_month", None)
        fields["snapstart"] = cost.snapstart_table(table, pricing, requests)
    return fields


def _lambda_section(recipe):
    package = getattr(recipe, "package", None)
    return getattr(package, "lambda_", None) if package else None


def _memory_sizes(recipe) -> list[int]:
    section = _lambda_section(recipe)
    return list(section.memory_mb) if section and section.memory_mb else cost.DEFAULT_MEMORY_MB


def _archs(recipe, zips: list[dict]) -> list[str]:
    """The recipe's Lambda archs (both when it has no Lambda section) and the zips' archs."""
    section = _lambda_section(recipe)
    archs = [a.value for a in section.arch] if section else list(cost.ARCHS)
    return sorted(set(archs) | {z["arch"] for z in zips if z.get("arch")})


def _latency_fields(by_threads: dict, settings: BenchSection) -> dict:
    threads, chosen = _reported_latency(by_threads, settings)
    keep = ("p50", "p90", "p95", "p99", "mean", "min", "max", "std", "runs", "batch")
    return {
        "latency_ms": {**{k: chosen[k] for k in keep}, "threads": threads},
        "throughput_per_s": chosen["throughput_per_s"],
        "latency_samples_ms": chosen["samples"],
        "latency_by_threads": {
            str(t): {k: s[k] for k in (*keep, "throughput_per_s")} for t, s in by_threads.items()
        },
    }


def measure_variant(exported, bundle, ctx, feeds_list, settings, recipe, zips, pricing) -> dict:
    """One report.json variant for an ExportedModel (and the zips built from it)."""
    path = Path(exported.path)
    by_threads = latency_by_threads(
        lambda t: open_layout_runner(path, t, exported.io), feeds_list, settings, exported.name
    )
    shapes = {s.name: s.shape for s in exported.io.inputs}
    file_feeds = adapt_layout(feeds_list[0], shapes)  # the layout the file takes
    cold = coldstart.cold_start_model(path, file_feeds, settings.cold_start_runs)
    runner = open_layout_runner(path, 1, exported.io)
    zip_entries = [measure_zip(z, file_feeds, settings) for z in zips]
    init_ms = _init_ms(cold, zip_entries)
    return {
        "name": exported.name,
        "role": "candidate",
        "format": exported.format,
        "scheme": exported.scheme,
        "path": str(path.name),
        "size_bytes": path.stat().st_size,
        "accuracy": _accuracy(exported, ctx, bundle, runner),
        "accuracy_samples": _accuracy_samples(ctx, bundle, runner),
        **_latency_fields(by_threads, settings),
        "cold_start_ms": cold["total_ms"],
        "cold_start": cold,
        "peak_rss_mib": cold["peak_rss_mib"],
        "zip": zip_entries[0] if zip_entries else None,
        "zips": zip_entries,
        **_cost_fields(by_threads, init_ms, _archs(recipe, zips), recipe, pricing),
    }


def _init_ms(cold: dict, zip_entries: list[dict]) -> float:
    """Init duration billed on a cold start: the zip's measured init, else import + load."""
    for z in zip_entries:
        if (z.get("cold_start") or {}).get("init_ms") is not None:
            return z["cold_start"]["init_ms"]
    return cold["import_ms"] + cold["load_ms"]


def runnable_here(z: dict) -> str | None:
    """None when the zip's arch and Python match this host, else why not."""
    host = host_arch()
    if z.get("arch") and z["arch"] != host:
        return f"zip is for {z['arch']}, this host is {host}"
    if z.get("python") and target_interpreter(z.get("arch"), str(z["python"])) is None:
        return f"zip is for Python {z['python']}, and no such interpreter is on this host"
    return None


def measure_zip(z: dict, feeds: dict, settings: BenchSection) -> dict:
    """The report's zip entry: sizes, plus cold start and warm latency of its handler when it
    can run on this host (else the reason it was not measured)."""

    keys = ("path", "zipped_bytes", "unzipped_bytes", "arch", "python")
    z = {**zip_sizes(Path(z["path"])), **{k: v for k, v in z.items() if v is not None}}
    entry = {k: (str(Path(z[k]).name) if k == "path" else z.get(k)) for k in keys}
    reason = runnable_here(z)
    if z.get("cold_start"):
        entry["cold_start"] = z["cold_start"]
    elif reason:
        entry["not_measured"] = reason
    else:
        event = z.get("event") or default_event(feeds)
        entry["cold_start"] = coldstart.cold_start_zip(
            Path(z["path"]), event, settings.cold_start_runs
        )
        warm = latency.measure_zip_latency(Path(z["path"]), [event], max(10, settings.runs // 4))
        entry["latency_ms"] = {k: warm[k] for k in ("p50", "p95", "p99", "mean", "runs")}
    if entry.get("cold_start"):
        entry["cold_start_ms"] = entry["cold_start"].get("total_ms")
    return entry


def _state_dict_bytes(module) -> int:
    import torch

    buf = io.BytesIO()
    torch.save(module.state_dict(), buf)
    return buf.tell()


def measure_torch(original, ctx, feeds_list, settings: BenchSection) -> dict:
    """The original torch model as the ``torch-fp32`` baseline variant (not gated, not priced:
    torch does not fit a Lambda zip)."""
    import torch

    before = torch.get_num_threads()
    try:
        by_threads = latency_by_threads(
            lambda t: TorchRunner(original.module, original.io, threads=t),
            feeds_list,
            settings,
            "torch-fp32",
        )
    finally:
        torch.set_num_threads(before)
    base = ctx.baseline or ctx.evaluate_bundle(original)
    return {
        "name": "torch-fp32",
        "role": "baseline",
        "format": "torch",
        "scheme": "fp32",
        "path": None,
        "size_bytes": _state_dict_bytes(original.module),
        "accuracy": {
            "metric": base.get("metric"),
            "value": base.get("value"),
            "baseline": base.get("value"),
            "delta": 0.0,
        },
        "accuracy_samples": _accuracy_samples(ctx, original, outputs=ctx.reference_outputs),
        **_latency_fields(by_threads, settings),
        "cold_start_ms": None,
        "cold_start": None,
        "peak_rss_mib": None,
        "zip": None,
        "zips": [],
        "cost": None,
        "cost_table": [],
    }


def _zip_owner(variants, recipe) -> str | None:
    """The variant a zip without a ``variant`` key was built from: the recipe's
    package.lambda.variant, else (as stages.choose_variant) the smallest validated one."""
    section = _lambda_section(recipe)
    if section and section.variant:
        return section.variant
    passed = [v for v in variants if (v.validation or {}).get("passed", True)]
    return min(passed, key=lambda v: v.size_bytes).name if passed else None


def _zips_for(name: str, zips: list[dict], owner: str | None) -> list[dict]:
    return [z for z in zips if (z.get("variant") or owner) == name]


def measure_variants(recipe, bundle, ctx, variants, zips, original, pricing) -> list[dict]:
    """report.json's variants: the torch ``original`` (the baseline, when it has a module),
    then every exported variant with the zips built from it."""
    settings = bench_settings(recipe)
    feeds_list = latency.feeds_from_split(
        bundle, ctx.eval_split, settings.batch, 64, settings.seq_len
    )
    measured = []
    if original is not None and getattr(original, "module", None) is not None:
        measured.append(measure_torch(original, ctx, feeds_list, settings))
    owner = _zip_owner(variants, recipe)
    for exported in variants:
        own = _zips_for(exported.name, zips, owner)
        measured.append(
            measure_variant(exported, bundle, ctx, feeds_list, settings, recipe, own, pricing)
        )
    return measured
