"""``compress bench``, ``compress report`` and ``compress compare``."""

from __future__ import annotations

from pathlib import Path

import click

from edgecompress.cli.common import count_option, emit_json, handle_errors, json_option
from edgecompress.measure import single
from edgecompress.report.compare import render_comparison
from edgecompress.report.gates import compare_reports, raise_on_failure
from edgecompress.report.report import load_report, render_reports


def _ms(x) -> str:
    return "—" if x is None else f"{x:.3f} ms"


def _render_bench(result: dict) -> str:
    lines = [f"{result['path']}"]
    if result["kind"] == "zip":
        lines.append(
            f"  zip: {result['zipped_bytes']:,} bytes zipped, "
            f"{result['unzipped_bytes']:,} unzipped; event: {result['event']}"
        )
    else:
        lines.append(f"  size: {result['size_bytes']:,} bytes; inputs: {result['inputs']}")
    c = result["cold_start_ms"]
    if c.get("import_ms") is not None:
        lines.append(
            f"  cold start (median of {c['runs']}): import {_ms(c['import_ms'])}, "
            f"load {_ms(c['load_ms'])}, first inference "
            f"{_ms(c['first_inference_ms'])}, total {_ms(c['total_ms'])}"
        )
    else:
        lines.append(
            f"  cold start (median of {c['runs']}): init (import+load) "
            f"{_ms(c['init_ms'])}, first inference {_ms(c['first_inference_ms'])}, "
            f"total {_ms(c['total_ms'])} ({c.get('note', '')})"
        )
    lines.append(f"  peak RSS: {result['peak_rss_mib']:.1f} MiB")
    for key, s in result["latency_ms"].items():
        label = "handler" if key == "handler" else f"{key} thread(s)"
        lines.append(
            f"  warm {label}: p50 {_ms(s['p50'])}  p95 {_ms(s['p95'])}  "
            f"p99 {_ms(s['p99'])}  mean {_ms(s['mean'])}  "
            f"({s['throughput_per_s']:.0f} samples/s, {s['runs']} runs)"
        )
    return "\n".join(lines)


@click.command()
@click.argument("model_or_zip", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--runs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--warmup", type=click.IntRange(min=0), default=10, show_default=True)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    multiple=True,
    help="Intra-op threads (repeat for several; default 1).",
)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--seq-len", type=click.IntRange(min=1), help="Text models: tokens per input.")
@click.option("--data", help="Dataset for inputs (e.g. digits); default: seeded random inputs.")
@count_option("cold-runs", 5, "Fresh processes for the cold-start median.")
@click.option(
    "--event",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Zips: the event JSON to send (default: sample_event.json in the zip).",
)
@json_option
@handle_errors
def bench(
    model_or_zip: Path,
    runs: int,
    warmup: int,
    threads: tuple[int, ...],
    batch: int,
    seq_len: int | None,
    data: str | None,
    cold_runs: int,
    event: Path | None,
    as_json: bool,
) -> None:
    """Latency, cold start and memory of MODEL_OR_ZIP (.onnx, .tflite or a Lambda .zip).

    For a zip, cold start is broken into import / load / first inference (from the
    handler's INIT_TIMINGS), and the warm latency is that of handler(event, None)."""

    if model_or_zip.suffix == ".zip":
        payload, source = single.zip_event(model_or_zip, event, data, batch, seq_len)
        result = single.bench_zip(model_or_zip, runs, warmup, cold_runs, payload, source)
    else:
        result = single.bench_model(
            model_or_zip, runs, warmup, list(threads) or [1], batch, seq_len, data, cold_runs
        )
    if as_json:
        emit_json(result)
    else:
        click.echo(_render_bench(result))


@click.command()
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
@handle_errors
def report(out: Path, as_json: bool) -> None:
    """Re-render OUT/report.md and OUT/report.html from OUT/report.json."""

    paths = render_reports(load_report(out / "report.json"), out)
    if as_json:
        emit_json({k: str(v) for k, v in paths.items()})
    else:
        click.echo("\n".join(f"wrote {p}" for p in paths.values()))


def limit_option(name: str, help: str, default: float | None = None):
    """A regression limit: a non-negative number, unset (no gate) unless it has a default."""
    return click.option(
        f"--{name}",
        type=click.FloatRange(min=0),
        default=default,
        show_default=default is not None,
        help=help,
    )


@click.command()
@click.argument("old", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@limit_option("max-p95-regression", "Allowed p95 increase per variant (0.10 = +10%).", 0.10)
@limit_option("max-size-regression", "Allowed size increase per variant (0.05 = +5%).")
@limit_option("max-accuracy-drop", "Allowed metric drop versus OLD per variant.")
@json_option
@handle_errors
def compare(
    old: Path,
    new: Path,
    max_p95_regression: float,
    max_size_regression,
    max_accuracy_drop,
    as_json: bool,
) -> None:
    """Regressions of NEW/report.json against OLD/report.json (variants matched by name);
    exit 3 when a gate fails."""

    rows, gates = compare_reports(
        load_report(old),
        load_report(new),
        max_p95_regression,
        max_size_regression,
        max_accuracy_drop,
    )
    if as_json:
        emit_json({"rows": rows, "gates": gates, "passed": all(g["passed"] for g in gates)})
    else:
        click.echo(render_comparison(rows, gates))
    raise_on_failure(gates)


COMMANDS = [bench, report, compare]
