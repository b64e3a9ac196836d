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


TARGET_COST_HEADER = [
    "variant",
    "target",
    "memory",
    "vCPU",
    "concurrency",
    "duration",
    "billed",
    "$/1M requests (est.)",
]


def target_cost_row(name: str, r: dict) -> list[str]:
    vcpu = "—" if r.get("vcpu") is None else f"{r['vcpu']:g}"
    return [
        name,
        r["target"],
        f"{r['memory_mb']} MB",
        vcpu,
        str(r.get("concurrency", 1)),
        fmt_ms(r["duration_ms"]),
        fmt_ms(r.get("billed_ms")),
        f"${r['usd_per_million']:.4f}",
    ]


def cheapest_line(name: str, costs: dict) -> str:
    best = costs["best"]
    vcpu = f", {best['vcpu']:g} vCPU" if best.get("vcpu") is not None else ""
    return (
        f"Cheapest for {name}: **{best['target']}** at {best['memory_mb']} MB{vcpu}, "
        f"concurrency {best.get('concurrency', 1)}: ${best['usd_per_million']:.4f} per "
        "million requests (estimate)."
    )


SNAPSTART_HEADER = [
    "variant",
    "arch",
    "memory",
    "cold start (est.)",
    "cold start with SnapStart (est.)",
    "$/1M (est.)",
    "$/1M with SnapStart (est.)",
    "SnapStart cache $/month",
]


def snapstart_rows(variants: list[dict]) -> list[list[str]]:
    """Cold start and cost without and with SnapStart (variants built with snapstart: true)."""
    return [
        [
            v["name"],
            r["arch"],
            f"{r['memory_mb']} MB",
            fmt_ms(r["cold_start_ms"]),
            fmt_ms(r["cold_start_ms_snapstart"]),
            f"${r['usd_per_million']:.4f}",
            f"${r['usd_per_million_snapstart']:.4f}",
            f"${r['cache_usd_per_month']:.2f}",
        ]
        for v in variants
        for r in (v.get("snapstart") or {}).get("rows") or []
    ]


def snapstart_note(report: dict) -> str:
    snap = next((v["snapstart"] for v in report.get("variants") or [] if v.get("snapstart")), {})
    if not snap:
        return ""
    cache = (
        f"cache spread over {snap['requests_per_month']:g} calls a month in the $/1M column"
        if snap.get("requests_per_month")
        else "cache not in the $/1M column (set cost.requests_per_month)"
    )
    return (
        f"Estimates, not measurements: {snap['basis']}; restore assumed "
        f"{snap['restore_ms_assumed']} ms; {cache}. SnapStart prices as of {snap['date']}: "
        f"{snap['source']}."
    )


def snapstart_lines(report: dict) -> list[str]:
    rows = snapstart_rows(report.get("variants") or [])
    if not rows:
        return []
    return [
        "### SnapStart: cold start and cost without and with it (estimates)",
        "",
        *table(SNAPSTART_HEADER, rows),
        "",
        f"_{snapstart_note(report)}_",
        "",
    ]


def target_cost_lines(report: dict) -> list[str]:
    """Lambda, Cloud Functions and Cloud Run side by side: the cheapest setting of each target
    per variant, then the cheapest overall (report.json holds every row)."""
    variants = report.get("variants") or []
    priced = [v for v in variants if (v.get("target_costs") or {}).get("best")]
    if not priced:
        return []
    rows = [
        target_cost_row(v["name"], r)
        for v in priced
        for r in v["target_costs"]["per_target"].values()
    ]
    gcp = report.get("pricing_gcp") or {}
    return [
        "### Cost per million requests across targets (estimates)",
        "",
        *table(TARGET_COST_HEADER, rows),
        "",
        *(cheapest_line(v["name"], v["target_costs"]) for v in priced),
        "",
        f"_Google Cloud prices: {gcp.get('region', '')}, as of {gcp.get('date', '?')} (not "
        "re-checked online); free tiers not subtracted._",
        "",
    ]


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
    lines += snapstart_lines(report)
    lines += target_cost_lines(report)
    lines += [f"_{note}_" if note else "", "", _settings_line(report), ""]
    return "\n".join(lines)
