"""report.md: one table of variants and the gates, short enough for a pull-request comment."""

from __future__ import annotations


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit, size in (("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    return f"{ms:.3f} ms" if ms < 1 else f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_delta(accuracy: dict | None) -> str:
    if not accuracy or accuracy.get("delta") is None:
        return "—"
    return f"{accuracy['delta']:+.4f}"


def fmt_value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def fmt_cost(cost: dict | None) -> str:
    if not cost:
        return "—"
    return f"${cost['usd_per_million']:.3f} @ {cost['memory_mb']} MB {cost['arch']} (est.)"


VARIANT_HEADER = [
    "variant",
    "format",
    "size",
    "accuracy",
    "Δ acc",
    "p50",
    "p95",
    "cold start",
    "zip",
    "$/1M invocations",
]


def variant_row(v: dict) -> list[str]:
    acc = v.get("accuracy") or {}
    lat = v.get("latency_ms") or {}
    zip_info = v.get("zip")
    value = acc.get("value")
    accuracy = f"{acc.get('metric', '')} {value:.4f}" if value is not None else "—"
    return [
        v["name"] + (" (original)" if v.get("role") == "baseline" else ""),
        v.get("format", "—"),
        fmt_bytes(v.get("size_bytes")),
        accuracy,
        fmt_delta(acc),
        fmt_ms(lat.get("p50")),
        fmt_ms(lat.get("p95")),
        fmt_ms(v.get("cold_start_ms")),
        fmt_bytes(zip_info["zipped_bytes"]) if zip_info else "—",
        fmt_cost(v.get("cost")),
    ]


def gate_row(g: dict, plain: bool = False) -> list[str]:
    mark = (
        ("PASS" if g["passed"] else "FAIL") if plain else ("✅ pass" if g["passed"] else "❌ FAIL")
    )
    return [mark, g["name"], fmt_value(g.get("value")), fmt_value(g.get("limit"))]


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), line(["---"] * len(header)), *(line(r) for r in rows)]


def _settings_line(report: dict) -> str:
    m = report.get("machine") or {}
    s = report.get("settings") or {}
    flags = ", ".join(m.get("flags") or []) or "—"
    parts = [
        f"{m.get('cpu', '?')} ({m.get('cores', '?')} cores; {flags})",
        f"Python {m.get('python', '?')}",
    ]
    if s:
        parts.append(
            f"batch {s.get('batch', 1)}, threads {s.get('latency_threads', 1)}, "
            f"{s.get('runs', '?')} runs"
        )
    return "Measured on " + "; ".join(parts) + f"; {report.get('date', '')}."


def render_markdown(report: dict) -> str:
    variants = report.get("variants") or []
    gates = report.get("gates") or []
    failed = [g for g in gates if not g["passed"]]
    verdict = (
        "no gates"
        if not gates
        else ("all gates passed" if not failed else f"{len(failed)} of {len(gates)} gates FAILED")
    )
    lines = [
        f"## edgecompress report — {report.get('name') or 'run'}: {verdict}",
        "",
        *table(VARIANT_HEADER, [variant_row(v) for v in variants]),
        "",
    ]
    if gates:
        lines += [
            "### Gates",
            "",
            *table(["", "gate", "value", "limit"], [gate_row(g) for g in gates]),
            "",
        ]
    pricing = report.get("pricing") or {}
    note = report.get("estimate_note", "")
    if pricing:
        note += f" Prices: {pricing.get('region', '')} as of {pricing.get('date', '?')}."
    lines += [f"_{note}_" if note else "", "", _settings_line(report), ""]
    return "\n".join(lines)
