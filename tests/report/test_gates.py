import copy

import pytest

from edgecompress.errors import GateError
from edgecompress.recipe import GatesSection
from edgecompress.report.compare import render_comparison
from edgecompress.report.gates import (
    accuracy_drop,
    compare_reports,
    evaluate_gates,
    raise_on_failure,
)


def _variant(name, p95, delta=-0.01, metric="accuracy", size=1000, zip_bytes=None):
    return {
        "name": name,
        "role": "candidate",
        "size_bytes": size,
        "accuracy": {"metric": metric, "value": 0.9 + delta, "baseline": 0.9, "delta": delta},
        "latency_ms": {"p50": p95 / 2, "p95": p95},
        "cold_start_ms": 200.0,
        "zip": None
        if zip_bytes is None
        else {
            "path": "z.zip",
            "zipped_bytes": zip_bytes,
            "unzipped_bytes": 3 * zip_bytes,
            "arch": "arm64",
            "python": "3.12",
        },
        "cost": {"arch": "arm64", "memory_mb": 512, "usd_per_million": 0.3, "estimate": True},
    }


def _report(*variants):
    return {"variants": list(variants), "gates": []}


def test_gate_below_measured_value_fails():
    report = _report(_variant("a", p95=5.0))
    gates = evaluate_gates(report, GatesSection(max_p95_ms=4.0, max_accuracy_drop=0.02))
    by = {g["gate"]: g for g in gates}
    assert by["max_p95_ms"]["passed"] is False and by["max_p95_ms"]["value"] == 5.0
    assert by["max_accuracy_drop"]["passed"] is True
    assert by["max_accuracy_drop"]["value"] == pytest.approx(0.01)
    with pytest.raises(GateError, match="max_p95_ms: a: 5 ms > limit 4 ms") as exc:
        raise_on_failure(gates)
    assert exc.value.exit_code == 3 and len(exc.value.gates) == 2
    assert all(g["passed"] for g in evaluate_gates(report, GatesSection(max_p95_ms=5.0)))


def test_baseline_variant_not_gated_and_zip_gates():
    base = {**_variant("torch-fp32", p95=100.0), "role": "baseline"}
    report = _report(base, _variant("small", 1.0, zip_bytes=40 * 2**20))
    gates = evaluate_gates(report, {"max_p95_ms": 50, "max_zip_mib": 30, "max_unzipped_mib": 250})
    assert [g["variant"] for g in gates if g["gate"] == "max_p95_ms"] == ["small"]
    zip_gate = next(g for g in gates if g["gate"] == "max_zip_mib")
    assert zip_gate["value"] == pytest.approx(40.0) and zip_gate["passed"] is False
    assert next(g for g in gates if g["gate"] == "max_unzipped_mib")["passed"] is True


def test_zip_gate_without_zip_fails_saying_why():
    gates = evaluate_gates(_report(_variant("a", 1.0)), {"max_zip_mib": 50})
    assert gates[0]["passed"] is False and gates[0]["note"] == "no Lambda zip was built"


def test_accuracy_drop_direction():
    assert accuracy_drop({"metric": "accuracy", "delta": -0.02}) == pytest.approx(0.02)
    assert accuracy_drop({"metric": "mse", "delta": 0.5}) == pytest.approx(0.5)
    assert accuracy_drop({"metric": "cosine", "delta": 0.0}) == 0.0


def test_compare_p95_regression():
    old = _report(_variant("a", 10.0), _variant("gone", 1.0))
    new20 = _report(_variant("a", 12.0), _variant("added", 1.0))
    rows, gates = compare_reports(old, new20, max_p95_regression=0.10)
    status = {r["variant"]: r["status"] for r in rows}
    assert status == {"a": "matched", "added": "added", "gone": "removed"}
    assert len(gates) == 1 and gates[0]["passed"] is False
    assert gates[0]["value"] == pytest.approx(0.2)
    rows5, gates5 = compare_reports(old, _report(_variant("a", 10.5)), 0.10)
    assert gates5[0]["passed"] is True and gates5[0]["value"] == pytest.approx(0.05)
    text = render_comparison(rows, gates)
    assert "+20.0%" in text and "FAIL" in text


def test_regression_gate_through_evaluate_gates():
    old = _report(_variant("a", 10.0))
    new = _report(_variant("a", 11.5))
    gates = evaluate_gates(new, GatesSection(max_p95_regression=0.10), copy.deepcopy(old))
    assert [(g["gate"], g["passed"]) for g in gates] == [("max_p95_regression", False)]


def test_compare_size_and_accuracy_gates():
    old = _report(_variant("a", 10.0, delta=0.0, size=1000))
    new = _report(_variant("a", 10.0, delta=-0.03, size=1100))
    _, gates = compare_reports(old, new, None, max_size_regression=0.05, max_accuracy_drop=0.01)
    by = {g["gate"]: g for g in gates}
    assert by["max_size_regression"]["value"] == pytest.approx(0.1)
    assert by["max_accuracy_drop_vs_old"]["value"] == pytest.approx(0.03)
    assert not any(g["passed"] for g in gates)
