"""report.json (schema_version 1), report.md for a pull-request comment, and the HTML report.

``write_report(report, out_dir)`` writes all three; ``render_reports(report, out_dir)`` writes
the md and html from an existing report dict (``compress report OUT``). Every dollar figure is
an estimate from latency measured on this machine, and says so.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
from pathlib import Path

from edgecompress.errors import CompressError
from edgecompress.measure.machine import machine_info
from edgecompress.report.html import render_html
from edgecompress.report.markdown import render_markdown

SCHEMA_VERSION = 1
REPORT_KEYS = ["schema_version", "date", "machine", "variants", "gates"]
VARIANT_KEYS = [
    "name",
    "format",
    "size_bytes",
    "accuracy",
    "latency_ms",
    "cold_start_ms",
    "zip",
    "cost",
]
ACCURACY_KEYS = ["metric", "value", "baseline", "delta"]
LATENCY_KEYS = ["p50", "p90", "p95", "p99", "mean", "min", "max"]
ZIP_KEYS = ["path", "zipped_bytes", "unzipped_bytes", "arch", "python"]
COST_KEYS = ["arch", "memory_mb", "usd_per_million", "estimate"]
GATE_KEYS = ["name", "limit", "value", "passed"]
ESTIMATE_NOTE = (
    "$ per million invocations are estimates: Lambda durations are derived from "
    "latency measured on this machine, scaled by Lambda's CPU share per memory size."
)


def new_report(variants: list[dict], gates: list[dict], **extra) -> dict:
    """A schema-1 report around measured ``variants`` and evaluated ``gates``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "estimate_note": ESTIMATE_NOTE,
        **extra,
        "variants": variants,
        "gates": gates,
        "passed": all(g["passed"] for g in gates),
    }


def _missing(obj, keys: list[str], where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected an object, got {type(obj).__name__}"]
    return [f"{where}.{k}: missing" for k in keys if k not in obj]


def _number(value, where: str, minimum: float | None = None) -> list[str]:
    """None, or a finite number (at least ``minimum``); a bool is not a number here."""
    if value is None:
        return []
    if isinstance(value, bool) or not isinstance(value, int | float):
        return [f"{where}: expected a number, got {type(value).__name__}"]
    if not math.isfinite(value):
        return [f"{where}: expected a finite number, got {value!r}"]
    if minimum is not None and value < minimum:
        return [f"{where}: must be >= {minimum:g}, got {value!r}"]
    return []


def _numbers(obj, keys: list[str], where: str, minimum: float | None = None) -> list[str]:
    if not isinstance(obj, dict):
        return [] if obj is None else [f"{where}: expected an object, got {type(obj).__name__}"]
    return [p for k in keys for p in _number(obj.get(k), f"{where}.{k}", minimum)]


def _variant_types(v: dict, where: str) -> list[str]:
    problems = [] if isinstance(v["name"], str) else [f"{where}.name: expected a string"]
    problems += _number(v["size_bytes"], f"{where}.size_bytes", 0)
    problems += _number(v["cold_start_ms"], f"{where}.cold_start_ms", 0)
    problems += _numbers(v["accuracy"], ["value", "baseline", "delta"], f"{where}.accuracy")
    problems += _numbers(v["latency_ms"], LATENCY_KEYS, f"{where}.latency_ms", 0)
    problems += _numbers(v["zip"], ["zipped_bytes", "unzipped_bytes"], f"{where}.zip", 0)
    problems += _numbers(v["cost"], ["memory_mb", "usd_per_million"], f"{where}.cost", 0)
    return problems


def _variant_problems(v: dict, where: str) -> list[str]:
    problems = _missing(v, VARIANT_KEYS, where)
    if problems:
        return problems
    problems += _missing(v.get("accuracy") or {}, ACCURACY_KEYS, f"{where}.accuracy")
    problems += _missing(v.get("latency_ms") or {}, LATENCY_KEYS, f"{where}.latency_ms")
    if v.get("zip") is not None:
        problems += _missing(v["zip"], ZIP_KEYS, f"{where}.zip")
    if v.get("cost") is not None:
        problems += _missing(v["cost"], COST_KEYS, f"{where}.cost")
        if isinstance(v["cost"], dict) and v["cost"].get("estimate") is not True:
            problems.append(f"{where}.cost.estimate: must be true")
    return problems or _variant_types(v, where)


def validate_report(report) -> list[str]:
    """What is missing or malformed in a report dict (empty when it meets schema 1)."""
    problems = _missing(report, REPORT_KEYS, "report")
    if problems and "expected an object" in problems[0]:
        return problems
    if report.get("schema_version") != SCHEMA_VERSION:
        problems.append(
            f"report.schema_version: expected {SCHEMA_VERSION}, "
            f"got {report.get('schema_version')!r}"
        )
    for key in ("variants", "gates"):
        if not isinstance(report.get(key), list):
            problems.append(f"report.{key}: expected a list, got {type(report.get(key)).__name__}")
    if problems:
        return problems
    for i, v in enumerate(report["variants"]):
        problems += _variant_problems(v, f"variants[{i}]")
    for i, g in enumerate(report["gates"]):
        problems += _missing(g, GATE_KEYS, f"gates[{i}]")
    return problems


def load_report(path: Path) -> dict:
    """Read and check a report.json; errors name the file and the field."""
    path = Path(path)
    if path.is_dir():
        path = path / "report.json"
    try:
        report = json.loads(path.read_text())
    except FileNotFoundError:
        raise CompressError(f"{path}: report not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CompressError(f"{path}: not valid JSON: {exc}") from None
    problems = validate_report(report)
    if problems:
        shown = "; ".join(problems[:5]) + (" ..." if len(problems) > 5 else "")
        raise CompressError(f"{path}: not a schema-{SCHEMA_VERSION} report: {shown}")
    return report


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder (no half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_reports(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.md and report.html (plots embedded) into ``out_dir`` from ``report``."""

    out_dir = Path(out_dir)
    md, page = render_markdown(report), render_html(report)
    atomic_write(out_dir / "report.md", md)
    atomic_write(out_dir / "report.html", page)
    return {"report_md": out_dir / "report.md", "report_html": out_dir / "report.html"}


def write_report(report: dict, out_dir: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``out_dir``."""
    problems = validate_report(report)
    if problems:
        raise CompressError(f"refusing to write an invalid report: {'; '.join(problems[:5])}")
    paths = render_reports(report, out_dir)
    atomic_write(Path(out_dir) / "report.json", json.dumps(report, indent=2, default=str) + "\n")
    return {"report_json": Path(out_dir) / "report.json", **paths}
