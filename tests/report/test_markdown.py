"""report.md / report.html: the SnapStart table (cold start and $ without and with it) is
shown only for variants built with snapstart, and every number in it is labelled an estimate."""

from __future__ import annotations

from edgecompress.measure import cost
from edgecompress.report.html import render_html
from edgecompress.report.markdown import render_markdown


def _report(snapstart: bool) -> dict:
    pricing = cost.load_pricing()
    rows = cost.cost_table({1: {"mean": 2.0, "p95": 3.0}}, [512, 1024], ["arm64"], pricing, 300)
    variant = {
        "name": "onnx-int8",
        "format": "onnx",
        "size_bytes": 1000,
        "accuracy": {"metric": "accuracy", "value": 0.99, "delta": -0.001},
        "latency_ms": {"p50": 2.0, "p95": 3.0},
        "cold_start_ms": 300.0,
        "cost": cost.variant_cost(cost.recommend(rows)),
        "cost_table": rows,
    }
    if snapstart:
        variant["snapstart"] = cost.snapstart_table(rows, pricing, 1_000_000)
    return {"name": "t", "variants": [variant], "gates": [], "pricing": {"date": "2025-08-01"}}


def test_snapstart_table_in_markdown_and_html():
    report = _report(True)
    md = render_markdown(report)
    assert "### SnapStart: cold start and cost without and with it (estimates)" in md
    row = report["variants"][0]["snapstart"]["rows"][0]
    assert row["memory_mb"] == 512 and row["cold_start_ms_snapstart"] < row["cold_start_ms"]
    assert f"| onnx-int8 | arm64 | 512 MB | {row['cold_start_ms']:.0f} ms | " in md
    assert f"${row['usd_per_million_snapstart']:.4f}" in md
    assert "Estimates, not measurements" in md and "restore assumed 200 ms" in md
    assert "SnapStart prices as of 2024-11-18" in md
    html = render_html(report, images={})
    assert "SnapStart: cold start and cost without and with it (estimates)" in html
    assert "cold start with SnapStart (est.)" in html and "not re-checked online" in html


def test_no_snapstart_table_without_snapstart():
    assert "SnapStart" not in render_markdown(_report(False))
    assert "SnapStart" not in render_html(_report(False), images={})
