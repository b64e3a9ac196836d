"""Compare two reports variant by variant (matched by name): p95, size, accuracy, cost, and
whether the accuracy and latency differences are significant (``significance.py``: paired
bootstrap on the per-sample scores, rank test on the latency samples).

The regression gates on these rows live in ``gates.py`` (``compare_reports``).
"""

from __future__ import annotations

from edgecompress.report.markdown import fmt_bytes, fmt_ms, gate_row, table
from edgecompress.report.significance import variant_significance, verdict


def _ratio(old: float | None, new: float | None) -> float | None:
    if old is None or new is None or old == 0:
        return None
    return new / old - 1.0


def _p95(v: dict) -> float | None:
    return (v.get("latency_ms") or {}).get("p95")


def diff_row(name: str, old: dict | None, new: dict | None) -> dict:
    status = "removed" if new is None else "added" if old is None else "matched"
    o, n = old or {}, new or {}
    old_acc, new_acc = (
        (o.get("accuracy") or {}).get("value"),
        (n.get("accuracy") or {}).get("value"),
    )
    return {
        "variant": name,
        "status": status,
        "old_p95_ms": _p95(o),
        "new_p95_ms": _p95(n),
        "p95_change": _ratio(_p95(o), _p95(n)),
        "old_size_bytes": o.get("size_bytes"),
        "new_size_bytes": n.get("size_bytes"),
        "size_change": _ratio(o.get("size_bytes"), n.get("size_bytes")),
        "old_accuracy": old_acc,
        "new_accuracy": new_acc,
        "accuracy_change": None if old_acc is None or new_acc is None else new_acc - old_acc,
        "old_usd_per_million": (o.get("cost") or {}).get("usd_per_million"),
        "new_usd_per_million": (n.get("cost") or {}).get("usd_per_million"),
        "significance": variant_significance(o, n) if status == "matched" else None,
    }


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x * 100:+.1f}%"


def render_comparison(rows: list[dict], gates: list[dict]) -> str:
    """A plain-text (markdown) regressions table and the gate verdicts."""
    body = [
        [
            r["variant"],
            r["status"],
            fmt_ms(r["old_p95_ms"]),
            fmt_ms(r["new_p95_ms"]),
            _pct(r["p95_change"]),
            fmt_bytes(r["old_size_bytes"]),
            fmt_bytes(r["new_size_bytes"]),
            "—" if r["accuracy_change"] is None else f"{r['accuracy_change']:+.4f}",
        ]
        for r in rows
    ]
    lines = table(
        ["variant", "status", "old p95", "new p95", "Δ p95", "old size", "new size", "Δ accuracy"],
        body,
    )
    lines += significance_lines(rows)
    if gates:
        lines += ["", *table(["", "gate", "value", "limit"], [gate_row(g) for g in gates])]
    return "\n".join(lines)


def significance_lines(rows: list[dict]) -> list[str]:
    """One verdict per matched variant: is the difference more than noise?"""
    out = [f"- {r['variant']}: {verdict(r['significance'])}" for r in rows if r["significance"]]
    if not out:
        return []
    return [
        "",
        "Significance (A = OLD, B = NEW; accuracy: paired bootstrap over the same eval "
        "samples, seed 0; latency: Mann-Whitney U on the kept latency samples):",
        *out,
    ]


def diff_rows(old: dict, new: dict) -> list[dict]:
    """One row per variant name in either report (new ones first)."""
    olds = {v["name"]: v for v in old.get("variants") or []}
    news = {v["name"]: v for v in new.get("variants") or []}
    return [
        diff_row(n, olds.get(n), news.get(n)) for n in [*news, *(n for n in olds if n not in news)]
    ]
