"""Cloud Functions / Cloud Run $ per million requests: the billing rules, worked by hand."""

from __future__ import annotations

import json

import pytest

from edgecompress.errors import RecipeError
from edgecompress.measure import cost_gcp

PRICING = cost_gcp.load_pricing_gcp()


def test_pricing_file_is_dated_and_sourced():
    assert PRICING["date"] == "2025-06-01" and "NOT re-checked online" in PRICING["date_note"]
    assert PRICING["source"].startswith("https://cloud.google.com/run/pricing")
    assert all(url.startswith("https://cloud.google.com/") for url in PRICING["sources"].values())
    assert (PRICING["usd_per_vcpu_second"], PRICING["usd_per_gib_second"]) == (0.000024, 0.0000025)
    assert PRICING["usd_per_million_requests"] == 0.40 and PRICING["billing_granularity_ms"] == 100


def test_concurrency_one_rounds_each_request_up_to_100_ms():
    # 30 ms at 1024 MiB / 0.583 vCPU bills 100 ms: 0.1 s x (0.583 x 24e-6 + 1 x 2.5e-6) x 1e6
    money = cost_gcp.usd_per_million_gcp(30.0, 1024, 0.583, 1, PRICING)
    assert money["billed_ms"] == 100
    assert money["compute_usd"] == pytest.approx(0.1 * (0.583 * 24e-6 + 2.5e-6) * 1e6)
    assert money["usd_per_million"] == pytest.approx(money["compute_usd"] + 0.40)
    assert cost_gcp.usd_per_million_gcp(100.01, 1024, 0.583, 1, PRICING)["billed_ms"] == 200


def test_concurrent_requests_share_instance_time():
    # 2 vCPU, concurrency 8: two requests run at once, each pays half its 30 ms, no rounding
    money = cost_gcp.usd_per_million_gcp(30.0, 2048, 2.0, 8, PRICING)
    assert money["billed_ms"] == 15.0
    assert money["compute_usd"] == pytest.approx(0.015 * (2 * 24e-6 + 2 * 2.5e-6) * 1e6)
    assert cost_gcp.parallel_requests(0.583, 1) == 1 and cost_gcp.parallel_requests(4.0, 2) == 2


def test_rows_scale_latency_by_cpu_share_and_bill_cold_starts():
    t1 = {"mean": 2.0, "p95": 3.0}
    rows = cost_gcp.target_rows(
        "gcf", t1, cost_gcp.gcf_configs(256, 0.167, 1), PRICING, 300.0, 0.01
    )
    by_memory = {r["memory_mb"]: r for r in rows}
    assert sorted(by_memory) == [256, 512, 1024, 2048, 4096]
    assert by_memory[256]["duration_ms"] == pytest.approx(2.0 / 0.167, rel=1e-4)
    assert by_memory[2048]["duration_ms"] == 2.0 and by_memory[4096]["p95_ms"] == 3.0
    cold = by_memory[2048]
    assert cold["init_usd"] == pytest.approx(0.01 * 0.3 * (24e-6 + 2 * 2.5e-6) * 1e6, rel=1e-4)
    assert all(r["estimate"] and r["target"] == "gcf" for r in rows)


def test_cheapest_across_targets_and_p95_target():
    lam = cost_gcp.lambda_rows([{"arch": "arm64", "memory_mb": 512, "duration_ms": 10.0,
                                 "p95_ms": 12.0, "billed_ms": 10, "usd_per_million": 0.3,
                                 "basis": "b"}])  # fmt: skip
    gcf = cost_gcp.target_rows("gcf", {"mean": 1.0, "p95": 2.0}, [(512, 0.333, 1)], PRICING)
    best = cost_gcp.cheapest(lam + gcf)
    assert best["best"]["target"] == "lambda-arm64" and set(best["per_target"]) == {
        "lambda-arm64", "gcf"}  # fmt: skip
    assert cost_gcp.cheapest(lam + gcf, p95_target_ms=7.0)["best"]["target"] == "gcf"
    assert cost_gcp.cheapest(lam + gcf, p95_target_ms=1.0) is None


def test_override_file(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"usd_per_million_requests": 0.5, "source": "mine"}))
    merged = cost_gcp.load_pricing_gcp(path)
    assert merged["usd_per_million_requests"] == 0.5 and merged["source"].startswith("mine (")
    with pytest.raises(RecipeError, match="file not found"):
        cost_gcp.load_pricing_gcp(tmp_path / "missing.json")
