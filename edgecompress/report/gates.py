"""Release gates from the recipe's ``gates`` section, evaluated on a report.

Regression gates (``compare_reports``): new p95 at most ``max_p95_regression`` above the old
one (0.10 = +10 %); optionally size growth and accuracy drop against the old report.

Each gate is ``{name, gate, variant, limit, value, passed, unit}``; per-variant gates apply to
every exported variant (the original torch model, role "baseline", is not gated). A gate
whose value was not measured (a zip gate with no zip) fails, saying why.
"""

from __future__ import annotations

from edgecompress.errors import GateError
from edgecompress.report.compare import diff_rows

MIB = 1024 * 1024
LOWER_IS_BETTER = {"mse", "mae", "rmse", "loss"}
EPS = 1e-12


def _section_dict(gates_section) -> dict:
    if gates_section is None:
        return {}
    if hasattr(gates_section, "model_dump"):
        return gates_section.model_dump()
    return dict(gates_section)


def gate(
    name: str,
    variant: str | None,
    limit: float,
    value: float | None,
    unit: str = "",
    note: str | None = None,
) -> dict:
    passed = value is not None and value <= limit + EPS
    label = f"{name}: {variant}" if variant else name
    entry = {
        "name": label,
        "gate": name,
        "variant": variant,
        "limit": limit,
        "value": value,
        "passed": passed,
        "unit": unit,
    }
    if note or value is None:
        entry["note"] = note or "not measured"
    return entry


def accuracy_drop(accuracy: dict | None) -> float | None:
    """How much worse than the baseline (positive = worse), whatever the metric's direction."""
    if not accuracy or accuracy.get("delta") is None:
        return None
    delta = float(accuracy["delta"])
    return (delta if accuracy.get("metric") in LOWER_IS_BETTER else -delta) + 0.0


def candidates(report: dict) -> list[dict]:
    return [v for v in report.get("variants") or [] if v.get("role") != "baseline"]


def _zips(v: dict) -> list[dict]:
    return v.get("zips") or ([v["zip"]] if v.get("zip") else [])


def _variant_gates(v: dict, limits: dict) -> list[dict]:
    name, out = v["name"], []
    simple = {
        "max_accuracy_drop": (lambda: accuracy_drop(v.get("accuracy")), ""),
        "max_p95_ms": (lambda: (v.get("latency_ms") or {}).get("p95"), "ms"),
        "max_cold_start_ms": (lambda: v.get("cold_start_ms"), "ms"),
        "max_usd_per_million": (lambda: (v.get("cost") or {}).get("usd_per_million"), "USD"),
    }
    for key, (get, unit) in simple.items():
        if limits.get(key) is not None:
            out.append(gate(key, name, limits[key], get(), unit))
    return out


def _zip_gates(report: dict, limits: dict) -> list[dict]:
    out = []
    for key, field in (("max_zip_mib", "zipped_bytes"), ("max_unzipped_mib", "unzipped_bytes")):
        if limits.get(key) is None:
            continue
        zips = [(v["name"], z) for v in candidates(report) for z in _zips(v)]
        if not zips:
            out.append(gate(key, None, limits[key], None, "MiB", "no Lambda zip was built"))
        for variant, z in zips:
            label = f"{variant} {z.get('arch', '')} py{z.get('python', '')}".strip()
            out.append(gate(key, label, limits[key], round(z[field] / MIB, 4), "MiB"))
    return out


def evaluate_gates(report: dict, gates_section, baseline_report: dict | None = None) -> list[dict]:
    """Every configured gate, evaluated on ``report`` (and against ``baseline_report`` for
    ``max_p95_regression``)."""
    limits = _section_dict(gates_section)
    out = []
    for v in candidates(report):
        out += _variant_gates(v, limits)
    out += _zip_gates(report, limits)
    if limits.get("max_p95_regression") is not None and baseline_report is not None:
        out += compare_reports(baseline_report, report, limits["max_p95_regression"])[1]
    return out


def _row_gates(row: dict, new: dict, limits: dict) -> list[dict]:
    out = []
    name = row["variant"]
    if limits["max_p95_regression"] is not None:
        out.append(
            gate(
                "max_p95_regression", name, limits["max_p95_regression"], row["p95_change"], "ratio"
            )
        )
    if limits["max_size_regression"] is not None:
        out.append(
            gate(
                "max_size_regression",
                name,
                limits["max_size_regression"],
                row["size_change"],
                "ratio",
            )
        )
    if limits["max_accuracy_drop"] is not None and row["accuracy_change"] is not None:
        metric = {
            "metric": (new.get("accuracy") or {}).get("metric"),
            "delta": row["accuracy_change"],
        }
        out.append(
            gate(
                "max_accuracy_drop_vs_old", name, limits["max_accuracy_drop"], accuracy_drop(metric)
            )
        )
    return out


def compare_reports(
    old: dict,
    new: dict,
    max_p95_regression: float | None = 0.10,
    max_size_regression: float | None = None,
    max_accuracy_drop: float | None = None,
) -> tuple[list[dict], list[dict]]:
    """(rows, gates): one row per variant name in either report; gates for matched ones."""
    news = {v["name"]: v for v in new.get("variants") or []}
    limits = {
        "max_p95_regression": max_p95_regression,
        "max_size_regression": max_size_regression,
        "max_accuracy_drop": max_accuracy_drop,
    }
    rows, gates = diff_rows(old, new), []
    for row in rows:
        name = row["variant"]
        if row["status"] == "matched" and news[name].get("role") != "baseline":
            gates += _row_gates(row, news[name], limits)
    return rows, gates


def failed(gates: list[dict]) -> list[dict]:
    return [g for g in gates if not g["passed"]]


def describe(g: dict) -> str:
    unit = f" {g['unit']}" if g.get("unit") else ""
    value = "not measured" if g["value"] is None else f"{g['value']:.6g}{unit}"
    note = f" ({g['note']})" if g.get("note") else ""
    return f"{g['name']}: {value} > limit {g['limit']:.6g}{unit}{note}"


def raise_on_failure(gates: list[dict]) -> None:
    """GateError (exit 3) listing every failed gate; nothing when all passed."""
    bad = failed(gates)
    if bad:
        lines = "\n".join(f"  - {describe(g)}" for g in bad)
        raise GateError(f"{len(bad)} of {len(gates)} gates failed:\n{lines}", gates)
