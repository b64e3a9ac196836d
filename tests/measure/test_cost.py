import json

import pytest

from edgecompress.errors import RecipeError
from edgecompress.measure import cost


@pytest.fixture
def pricing():
    return cost.load_pricing()


def test_pricing_file_has_date_and_source(pricing):
    assert pricing["date"] == "2025-08-01"
    assert "aws.amazon.com/lambda/pricing" in pricing["source"]
    assert pricing["usd_per_gb_second"] == {"arm64": 0.0000133334, "x86_64": 0.0000166667}


def test_hand_calculation_1024mb_50ms(pricing):
    arm = cost.usd_per_million(50, 1024, "arm64", pricing)
    x86 = cost.usd_per_million(50, 1024, "x86_64", pricing)
    # 50 ms * 1 GB * 0.0000133334 * 1e6 = 0.66667; + 0.20 requests
    assert arm["compute_usd"] == pytest.approx(0.66667, abs=1e-9)
    assert arm["usd_per_million"] == pytest.approx(0.86667, abs=1e-9)
    assert round(arm["usd_per_million"], 3) == 0.867
    assert x86["usd_per_million"] == pytest.approx(0.833335 + 0.2, abs=1e-9)
    assert round(x86["usd_per_million"], 3) == 1.033


def test_duration_is_rounded_up_to_1ms(pricing):
    assert cost.billed_ms(50.0, pricing) == 50
    assert cost.billed_ms(50.01, pricing) == 51
    assert cost.billed_ms(0.02, pricing) == 1
    assert cost.usd_per_million(49.2, 1024, "arm64", pricing)["usd_per_million"] == (
        pytest.approx(0.86667, abs=1e-9)
    )


def test_init_billed_for_cold_share(pricing):
    money = cost.usd_per_million(50, 1024, "arm64", pricing, init_ms=300, init_fraction=0.01)
    # 1 % of invocations pay 300 ms of init at 1 GB
    assert money["init_usd"] == pytest.approx(0.01 * 0.3 * 0.0000133334 * 1e6)
    assert money["usd_per_million"] == pytest.approx(0.86667 + 0.040000, abs=1e-6)


def test_duration_scales_with_cpu_share_and_threads(pricing):
    d, basis = cost.duration_at_memory(10.0, 512, pricing=pricing)
    assert d == pytest.approx(10.0 * 1769 / 512) and "CPU share" in basis
    assert cost.duration_at_memory(10.0, 1769, pricing=pricing)[0] == pytest.approx(10.0)
    # measured 1->2 thread: 10 ms -> 6 ms, efficiency 0.667 per extra vCPU
    d2, basis2 = cost.duration_at_memory(10.0, 3538, 6.0, pricing)
    assert d2 == pytest.approx(6.0) and basis2.startswith("measured")
    d4, basis4 = cost.duration_at_memory(10.0, 1769 * 4, 6.0, pricing)
    assert d4 == pytest.approx(10.0 / (1 + (10 / 6 - 1) * 3)) and basis4.startswith("extrap")
    # threads slower than one: no gain assumed, never a loss
    assert cost.duration_at_memory(10.0, 3538, 12.0, pricing)[0] == pytest.approx(10.0)
    # 10,240 MB: 5.79 vCPUs, perfect scaling measured
    assert cost.duration_at_memory(10.0, 10240, 5.0, pricing)[0] == pytest.approx(
        10.0 * 1769 / 10240
    )


def test_cost_table_rows_and_recommendation(pricing):
    lat = {1: {"mean": 10.0, "p95": 12.0}, 2: {"mean": 6.0, "p95": 7.0}}
    rows = cost.cost_table(lat, [512, 1024, 2048, 8192], ["arm64", "x86_64"], pricing)
    assert len(rows) == 8 and all(r["estimate"] is True for r in rows)
    assert {r["arch"] for r in rows} == {"arm64", "x86_64"}
    assert [r["extrapolated"] for r in rows[:4]] == [False, False, False, True]
    for r in rows:
        gb = r["memory_mb"] / 1024
        price = pricing["usd_per_gb_second"][r["arch"]]
        assert r["usd_per_million"] == pytest.approx(
            r["billed_ms"] / 1000 * gb * price * 1e6 + 0.2, abs=1e-5
        )
    cheapest = cost.recommend(rows)
    assert cheapest["usd_per_million"] == min(r["usd_per_million"] for r in rows)
    assert cheapest["arch"] == "arm64"
    fast = cost.recommend(rows, p95_target_ms=20)
    assert fast["p95_ms"] <= 20 and fast["meets_target"]
    assert fast["usd_per_million"] == min(r["usd_per_million"] for r in rows if r["p95_ms"] <= 20)
    impossible = cost.recommend(rows, p95_target_ms=0.5)
    assert impossible["meets_target"] is False
    assert impossible["p95_ms"] == min(r["p95_ms"] for r in rows)
    entry = cost.variant_cost(fast)
    assert entry["estimate"] is True and {"arch", "memory_mb", "usd_per_million"} <= set(entry)


def test_cost_table_needs_one_thread(pricing):
    with pytest.raises(ValueError, match="1-thread"):
        cost.cost_table({2: {"mean": 1, "p95": 1}}, [512], ["arm64"], pricing)


def test_user_pricing_overrides(tmp_path):
    user = tmp_path / "prices.json"
    user.write_text(
        json.dumps(
            {"usd_per_gb_second": {"arm64": 0.00001}, "date": "2030-01-01", "source": "my contract"}
        )
    )
    pricing = cost.load_pricing(user)
    assert pricing["usd_per_gb_second"] == {"arm64": 0.00001, "x86_64": 0.0000166667}
    assert pricing["date"] == "2030-01-01" and "my contract" in pricing["source"]
    assert cost.usd_per_million(100, 1024, "arm64", pricing)["usd_per_million"] == (
        pytest.approx(1.2)
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(RecipeError, match="bad.json: not valid JSON"):
        cost.load_pricing(bad)
    with pytest.raises(RecipeError, match="missing.json: file not found"):
        cost.load_pricing(tmp_path / "missing.json")
    with pytest.raises(RecipeError, match="no price for arch 'riscv'"):
        cost.usd_per_million(1, 1024, "riscv", pricing)


def test_snapstart_prices_carry_date_and_source(pricing):
    snap = pricing["snapstart"]
    assert snap["date"] == "2024-11-18" and "aws.amazon.com/lambda/pricing" in snap["source"]
    assert "not re-checked online" in snap["source"]
    assert snap["usd_per_gb_second_cache"] == 0.0000015046
    assert snap["usd_per_gb_restored"] == 0.0001397998


def test_snapstart_row_hand_calculation(pricing):
    lat = {1: {"mean": 10.0, "p95": 12.0}}
    (row,) = cost.cost_table(lat, [1024], ["arm64"], pricing, init_ms=500, init_fraction=0.01)
    snap = cost.snapstart_row(row, pricing, requests_per_month=10_000_000)
    # without: 500 ms init at 1024 MB runs at 1769/1024 of the speed -> 863.8 ms, + one call
    assert snap["cold_start_ms"] == pytest.approx(500 * 1769 / 1024 + 10 * 1769 / 1024, abs=1e-3)
    assert snap["cold_start_ms_snapstart"] == pytest.approx(200 + 10 * 1769 / 1024, abs=1e-3)
    # 10,000 restores per million calls at 1 GB
    assert snap["restore_usd"] == pytest.approx(10_000 * 0.0001397998, abs=1e-6)
    # one version cached all month at 1 GB: 730 h
    assert snap["cache_usd_per_month"] == pytest.approx(0.0000015046 * 730 * 3600, abs=1e-6)
    assert snap["cache_usd_per_million"] == pytest.approx(snap["cache_usd_per_month"] / 10)
    expected = row["compute_usd"] + 0.2 + snap["restore_usd"] + snap["cache_usd_per_million"]
    assert snap["usd_per_million_snapstart"] == pytest.approx(expected, abs=1e-5)
    assert snap["usd_per_million"] == row["usd_per_million"] and snap["estimate"] is True
    no_traffic = cost.snapstart_row(row, pricing)
    assert no_traffic["cache_usd_per_million"] is None
    assert no_traffic["usd_per_million_snapstart"] == pytest.approx(expected - 0.39545, abs=1e-4)


def test_snapstart_override_and_missing_prices(tmp_path, pricing):
    user = tmp_path / "p.json"
    user.write_text(json.dumps({"snapstart": {"restore_ms_assumed": 120}}))
    merged = cost.load_pricing(user)
    assert merged["snapstart"]["restore_ms_assumed"] == 120
    assert merged["snapstart"]["usd_per_gb_restored"] == 0.0001397998
    row = cost.cost_table({1: {"mean": 5.0, "p95": 6.0}}, [1769], ["x86_64"], merged)[0]
    assert cost.snapstart_row(row, merged)["cold_start_ms_snapstart"] == pytest.approx(125.0)
    with pytest.raises(RecipeError, match="no complete 'snapstart' entry"):
        cost.snapstart_row(row, {k: v for k, v in pricing.items() if k != "snapstart"})
