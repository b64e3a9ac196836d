"""report.html: one self-contained page (no external files); plots embedded as base64 PNGs."""

from __future__ import annotations

import base64
import html as _html

from edgecompress.report.markdown import (
    SNAPSTART_HEADER,
    TARGET_COST_HEADER,
    VARIANT_HEADER,
    cheapest_line,
    fmt_ms,
    gate_row,
    snapstart_note,
    snapstart_rows,
    target_cost_row,
    variant_row,
)
from edgecompress.report.plots import all_plots

CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
table{border-collapse:collapse;margin:1rem 0;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
th{background:#f3f3f3} tr.fail td{background:#fde8e8} tr.pass td{background:#eefbea}
.note{color:#666;font-size:.85rem} img{max-width:100%;border:1px solid #eee;margin:.5rem 0}
"""
TITLES = {
    "latency": "Latency distribution per variant",
    "pareto": "Size vs p95 vs accuracy (Pareto front marked)",
    "cost": "Cost per million invocations vs memory size, per arch (estimate)",
}


def esc(value) -> str:
    return _html.escape(str(value))


def _table(header: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cold_rows(variants: list[dict]) -> list[list[str]]:
    rows = []
    for v in variants:
        c = v.get("cold_start") or {}
        rows.append(
            [
                v["name"],
                fmt_ms(c.get("import_ms")),
                fmt_ms(c.get("load_ms")),
                fmt_ms(c.get("init_ms")),
                fmt_ms(c.get("first_inference_ms")),
                fmt_ms(v.get("cold_start_ms")),
                f"{v['peak_rss_mib']:.0f} MiB" if v.get("peak_rss_mib") else "—",
            ]
        )
    return rows


def _cost_rows(variants: list[dict]) -> list[list[str]]:
    rows = []
    for v in variants:
        for r in v.get("cost_table") or []:
            rows.append(
                [
                    v["name"],
                    r["arch"],
                    r["memory_mb"],
                    fmt_ms(r["duration_ms"]),
                    fmt_ms(r["p95_ms"]),
                    f"${r['usd_per_million']:.4f}",
                    r["basis"],
                ]
            )
    return rows


COLD_HEADER = [
    "variant",
    "import",
    "load",
    "init (import+load)",
    "first inference",
    "total",
    "peak RSS",
]
COST_HEADER = ["variant", "arch", "memory MB", "duration", "p95", "$/1M", "basis"]


def _header(report: dict) -> list[str]:
    m = report.get("machine") or {}
    return [
        f"<h1>edgecompress report — {esc(report.get('name') or 'run')}</h1>",
        f"<p class=note>{esc(report.get('date', ''))} · {esc(m.get('cpu', '?'))} · "
        f"{esc(m.get('cores', '?'))} cores · flags {esc(', '.join(m.get('flags') or []))}"
        f" · Python {esc(m.get('python', '?'))}</p>",
    ]


def _gates(gates: list[dict]) -> list[str]:
    if not gates:
        return []
    rows = [gate_row(g, plain=True) for g in gates]
    classes = ["pass" if g["passed"] else "fail" for g in gates]
    return ["<h2>Gates</h2>", _table(["", "gate", "value", "limit"], rows, classes)]


def _images(images: dict[str, bytes]) -> list[str]:
    parts = []
    for key, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts += [
            f"<h2>{esc(TITLES.get(key, key))}</h2>",
            f'<img alt="{esc(key)} plot" src="data:image/png;base64,{data}">',
        ]
    return parts


def _target_costs(report: dict) -> list[str]:
    """Every Lambda / Cloud Functions / Cloud Run row, and the cheapest per variant."""
    variants = report.get("variants") or []
    priced = [v for v in variants if (v.get("target_costs") or {}).get("best")]
    if not priced:
        return []
    rows = [target_cost_row(v["name"], r) for v in priced for r in v["target_costs"]["rows"]]
    best = [cheapest_line(v["name"], v["target_costs"]).replace("**", "") for v in priced]
    gcp = report.get("pricing_gcp") or {}
    note = (
        f"Google Cloud: {gcp.get('source', '')}; {gcp.get('region', '')}; as of "
        f"{gcp.get('date', '?')}, not re-checked online; free tiers not subtracted."
    )
    return [
        "<h2>Cost per million requests across targets (estimate)</h2>",
        _table(TARGET_COST_HEADER, rows),
        *(f"<p>{esc(line)}</p>" for line in best),
        f"<p class=note>{esc(note)}</p>",
    ]


def _snapstart(report: dict) -> list[str]:
    rows = snapstart_rows(report.get("variants") or [])
    if not rows:
        return []
    return [
        "<h2>SnapStart: cold start and cost without and with it (estimates)</h2>",
        _table(SNAPSTART_HEADER, rows),
        f"<p class=note>{esc(snapstart_note(report))}</p>",
    ]


def render_html(report: dict, images: dict[str, bytes] | None = None) -> str:
    """The page; ``images`` (name -> PNG bytes) default to plots.all_plots(report)."""
    if images is None:
        images = all_plots(report)
    variants = report.get("variants") or []
    pricing_source = (report.get("pricing") or {}).get("source", "")
    parts = [
        *_header(report),
        "<h2>Variants</h2>",
        _table(VARIANT_HEADER, [variant_row(v) for v in variants]),
        *_gates(report.get("gates") or []),
        *_images(images),
        "<h2>Cold start (median of fresh processes)</h2>",
        _table(COLD_HEADER, _cold_rows(variants)),
        "<h2>Cost table (estimate)</h2>",
        _table(COST_HEADER, _cost_rows(variants)),
        f"<p class=note>{esc(report.get('estimate_note', ''))} Prices: {esc(pricing_source)}</p>",
        *_snapstart(report),
        *_target_costs(report),
    ]
    head = f"<meta charset=utf-8><title>edgecompress report</title><style>{CSS}</style>"
    return (
        f"<!DOCTYPE html><html lang=en><head>{head}</head><body>"
        + "\n".join(parts)
        + ("</body></html>\n")
    )
