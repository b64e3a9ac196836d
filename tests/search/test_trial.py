"""What a trial reads from its report: the deployed variant, constraints, the closest trial."""

from __future__ import annotations

import pytest

from edgecompress.search import records
from edgecompress.search.trial import constraints, deployed_variant, measurements


def variant(name, usd, zipped=None, drop=0.0):
    return {
        "name": name,
        "role": "candidate",
        "accuracy": {"metric": "accuracy", "value": 0.9 - drop, "baseline": 0.9, "delta": -drop},
        "latency_ms": {"p95": 0.1},
        "cost": {"usd_per_million": usd, "memory_mb": 128, "arch": "arm64"},
        "zip": {"zipped_bytes": zipped, "arch": "x86_64"} if zipped else None,
    }


def test_the_zipped_variant_is_the_deployment_else_the_cheapest():
    baseline = {**variant("torch-fp32", None), "role": "baseline", "cost": None}
    zipped = {"variants": [baseline, variant("a", 0.21), variant("b", 0.25, zipped=2 << 20)]}
    assert deployed_variant(zipped)["name"] == "b"
    m = measurements(zipped)
    assert m["usd_per_million"] == 0.25 and m["zip_mib"] == 2.0 and m["accuracy_drop"] == 0.0
    plain = {"variants": [baseline, variant("a", 0.21), variant("b", 0.25)]}
    assert deployed_variant(plain)["name"] == "a"
    assert measurements({"variants": [baseline]}) is None


def test_constraints_per_gate_kind():
    gates = [
        {"gate": "max_accuracy_drop", "limit": 0.01, "value": 0.02, "passed": False},
        {"gate": "max_accuracy_drop", "limit": 0.01, "value": 0.005, "passed": True},
        {"gate": "max_zip_mib", "limit": 50, "value": None, "passed": False},
    ]
    kinds = ["max_accuracy_drop", "max_zip_mib", "max_p95_ms"]
    assert constraints(gates, kinds) == [pytest.approx(1.0), 1.0, 0.0]


def test_pareto_best_and_closest():
    def rec(n, usd, drop, passed, dup=None):
        gate = {"gate": "max_accuracy_drop", "limit": 0.01, "value": drop, "passed": passed}
        return {"number": n, "status": "passed" if passed else "gate_failed", "passed": passed,
                "objectives": [usd, drop], "duplicate_of": dup, "recipe": {"name": "t"},
                "measurements": {"usd_per_million": usd, "accuracy_drop": drop},
                "gates": [gate]}  # fmt: skip

    trials = [rec(0, 0.3, 0.0, True), rec(1, 0.25, 0.005, True), rec(2, 0.26, 0.006, True),
              rec(3, 0.25, 0.005, True, dup=1), rec(4, 0.2, 0.05, False)]  # fmt: skip
    assert records.pareto(trials) == [0, 1]
    assert records.best(trials)["number"] == 1
    failing = [rec(0, 0.2, 0.05, False), rec(1, 0.3, 0.02, False)]
    assert records.best(failing) is None and records.closest(failing)["number"] == 1
    assert records.pareto(failing) == [0, 1]  # none passed: the front of all measured trials
