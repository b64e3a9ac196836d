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
