"""Dollars per million Lambda invocations, estimated from latency measured on this machine.

Billed duration is rounded up to 1 ms and priced per GB-second (GB = 1024 MB) for the
architecture, plus a price per request. Since 2025-08-01 the INIT phase of zip functions is
billed too: a share ``init_fraction`` of invocations is cold and pays its init duration.

Duration at a memory size: below ``mb_per_vcpu`` (1,769 MB, one vCPU) the function gets a
proportional CPU share, so single-thread latency scales as ``t1 * 1769 / memory``. Above it,
the measured multi-thread speed-up applies: 1 -> 2 threads is measured here, and the points
past 2 vCPUs (up to 6) are extrapolated with the measured 1 -> 2 efficiency. Every number
here is an estimate (another CPU, another OS) and is labelled so.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgecompress.errors import RecipeError

PRICING_FILE = Path(__file__).with_name("pricing.json")
DEFAULT_MEMORY_MB = [512, 1024, 1769, 2048, 3008]
ARCHS = ["arm64", "x86_64"]


def read_override(path: Path, field: str) -> dict:
    """A user's pricing JSON object; a missing or malformed file is a RecipeError naming
    ``field`` and the file."""
    try:
        user = json.loads(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"{field}: {path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise RecipeError(f"{field}: {path}: not valid JSON: {exc}") from None
    if not isinstance(user, dict):
        raise RecipeError(f"{field}: {path}: expected a JSON object")
    return user


def load_pricing(override: str | Path | None = None) -> dict:
    """The built-in prices, with the keys of a user's pricing JSON file laid over them."""
    pricing = json.loads(PRICING_FILE.read_text())
    if override is None:
        return pricing
    path = Path(override)
    user = read_override(path, "cost.pricing")
    prices = {**pricing["usd_per_gb_second"], **user.get("usd_per_gb_second", {})}
    merged = {**pricing, **user, "usd_per_gb_second": prices}
    if isinstance(user.get("snapstart"), dict):
        merged["snapstart"] = {**pricing.get("snapstart", {}), **user["snapstart"]}
    merged["source"] = f"{user.get('source', path)} (override of {pricing['source']})"
    return merged


def _gb_second_price(pricing: dict, arch: str) -> float:
    try:
        return float(pricing["usd_per_gb_second"][arch])
    except KeyError:
        known = ", ".join(pricing["usd_per_gb_second"])
        raise RecipeError(f"cost: no price for arch {arch!r} (known: {known})") from None


def billed_ms(duration_ms: float, pricing: dict) -> int:
    step = pricing.get("billing_granularity_ms", 1)
    return int(math.ceil(round(duration_ms / step, 9)) * step)


def usd_per_million(
    duration_ms: float,
    memory_mb: int,
    arch: str,
    pricing: dict,
    init_ms: float = 0.0,
    init_fraction: float = 0.0,
) -> dict:
    """Cost of one million invocations of ``duration_ms`` at ``memory_mb`` (an estimate)."""
    gb = memory_mb / 1024
    price = _gb_second_price(pricing, arch)
    compute = billed_ms(duration_ms, pricing) / 1000 * gb * price * 1e6
    init = 0.0
    if init_ms and init_fraction and pricing.get("init_billed", True):
        init = init_fraction * billed_ms(init_ms, pricing) / 1000 * gb * price * 1e6
    requests = float(pricing["usd_per_million_requests"])
    return {
        "compute_usd": compute,
        "init_usd": init,
        "requests_usd": requests,
        "usd_per_million": compute + init + requests,
    }


def multithread_efficiency(t1_ms: float, t2_ms: float | None) -> float:
    """Gain per extra vCPU from the measured 1 -> 2 thread speed-up, within [0, 1]."""
    if not t2_ms or t2_ms <= 0:
        return 0.0
    return min(max(t1_ms / t2_ms - 1.0, 0.0), 1.0)


def duration_at_memory(
    t1_ms: float, memory_mb: int, t2_ms: float | None = None, pricing: dict | None = None
) -> tuple[float, str]:
    """(estimated duration, basis) of a call measured at ``t1_ms`` on one full core."""
    pricing = pricing or load_pricing()
    per_vcpu = pricing["mb_per_vcpu"]
    if memory_mb <= per_vcpu:
        return t1_ms * per_vcpu / memory_mb, "1-thread latency x CPU share"
    vcpus = min(memory_mb / per_vcpu, pricing["max_vcpus"])
    efficiency = multithread_efficiency(t1_ms, t2_ms)
    if t2_ms is None:
        basis = "1-thread latency (no multi-thread measurement)"
    elif vcpus <= 2:
        basis = "measured 1->2 thread speed-up"
    else:
        basis = "extrapolated from measured 1->2 thread efficiency"
    return t1_ms / (1.0 + efficiency * (vcpus - 1.0)), basis


def cost_table(
    latency_by_threads: dict[int, dict],
    memory_sizes: list[int],
    archs: list[str],
    pricing: dict,
    init_ms: float = 0.0,
    init_fraction: float = 0.0,
) -> list[dict]:
    """One row per (arch, memory_mb): estimated mean and p95 duration and $ per million.

    ``latency_by_threads`` maps a thread count to a latency summary ({mean, p95, ...}) of
    one call; thread count 1 is required, 2 refines the estimate above one vCPU."""
    one, two = latency_by_threads.get(1), latency_by_threads.get(2)
    if one is None:
        raise ValueError("cost_table needs a 1-thread latency measurement")
    rows = []
    for arch in archs:
        for memory in sorted(memory_sizes):
            mean, basis = duration_at_memory(one["mean"], memory, two and two["mean"], pricing)
            p95, _ = duration_at_memory(one["p95"], memory, two and two["p95"], pricing)
            init = init_ms * max(1.0, pricing["mb_per_vcpu"] / memory)  # CPU share, 1 thread
            money = usd_per_million(mean, memory, arch, pricing, init, init_fraction)
            rows.append(
                {
                    "arch": arch,
                    "memory_mb": memory,
                    "duration_ms": round(mean, 4),
                    "p95_ms": round(p95, 4),
                    "billed_ms": billed_ms(mean, pricing),
                    "init_ms": round(init, 3),
                    "init_fraction": init_fraction,
                    **{k: round(v, 6) for k, v in money.items()},
                    "basis": basis,
                    "extrapolated": basis.startswith("extrapolated"),
                    "estimate": True,
                }
            )
    return rows


def recommend(rows: list[dict], p95_target_ms: float | None = None) -> dict | None:
    """The cheapest row meeting the p95 target (all rows when no target). When none meets
    it, the fastest row, with ``meets_target`` False."""
    if not rows:
        return None
    meeting = [r for r in rows if p95_target_ms is None or r["p95_ms"] <= p95_target_ms]
    if meeting:
        best = min(meeting, key=lambda r: (r["usd_per_million"], r["p95_ms"]))
        return {**best, "p95_target_ms": p95_target_ms, "meets_target": True}
    best = min(rows, key=lambda r: (r["p95_ms"], r["usd_per_million"]))
    return {**best, "p95_target_ms": p95_target_ms, "meets_target": False}


def variant_cost(recommended: dict | None) -> dict | None:
    """The report.json ``cost`` entry of a variant."""
    if recommended is None:
        return None
    keys = (
        "arch",
        "memory_mb",
        "usd_per_million",
        "duration_ms",
        "p95_ms",
        "basis",
        "p95_target_ms",
        "meets_target",
    )
    return {**{k: recommended[k] for k in keys}, "estimate": True}


HOURS_PER_MONTH = 730


def snapstart_prices(pricing: dict) -> dict:
    try:
        snap = pricing["snapstart"]
        return {k: float(snap[k]) for k in ("usd_per_gb_second_cache", "usd_per_gb_restored")} | {
            "restore_ms": float(snap["restore_ms_assumed"])
        }
    except (KeyError, TypeError, ValueError):
        raise RecipeError(
            "cost.pricing: no complete 'snapstart' entry (usd_per_gb_second_cache, "
            "usd_per_gb_restored, restore_ms_assumed)"
        ) from None


def snapstart_row(row: dict, pricing: dict, requests_per_month: float | None = None) -> dict:
    """One cost_table row without and with SnapStart (every number an estimate).

    Without: a cold start is init (``init_ms``, measured, at the row's CPU share) plus one
    warm call, and the init is billed. With: the snapshot's init was paid once at publish
    (not per call); a cold start is a restore (``restore_ms_assumed``, an assumption) plus one
    warm call (the hooks warmed the session), and each restore costs ``usd_per_gb_restored``
    per GB of memory. The snapshot cache costs ``usd_per_gb_second_cache`` per GB for as long
    as the version is active (at least 3 hours): per month, and per million calls when
    ``requests_per_month`` is known."""
    snap = snapstart_prices(pricing)
    gb = row["memory_mb"] / 1024
    restores = row["init_fraction"] * 1e6  # cold starts per million calls become restores
    restore_usd = restores * gb * snap["usd_per_gb_restored"]
    cache_month = gb * snap["usd_per_gb_second_cache"] * HOURS_PER_MONTH * 3600
    cache_million = cache_month / (requests_per_month / 1e6) if requests_per_month else None
    with_snap = row["compute_usd"] + row["requests_usd"] + restore_usd + (cache_million or 0.0)
    return {
        "arch": row["arch"],
        "memory_mb": row["memory_mb"],
        "cold_start_ms": round(row["init_ms"] + row["duration_ms"], 3),
        "cold_start_ms_snapstart": round(snap["restore_ms"] + row["duration_ms"], 3),
        "usd_per_million": row["usd_per_million"],
        "usd_per_million_snapstart": round(with_snap, 6),
        "restore_usd": round(restore_usd, 6),
        "cache_usd_per_month": round(cache_month, 6),
        "cache_usd_per_million": None if cache_million is None else round(cache_million, 6),
        "init_fraction": row["init_fraction"],
        "estimate": True,
    }


def snapstart_table(rows: list[dict], pricing: dict, requests_per_month=None) -> dict:
    """report.json's ``snapstart`` entry of a variant: the rows and what they assume."""
    snap = pricing.get("snapstart") or {}
    return {
        "rows": [snapstart_row(r, pricing, requests_per_month) for r in rows],
        "restore_ms_assumed": snap.get("restore_ms_assumed"),
        "requests_per_month": requests_per_month,
        "prices": {k: snap.get(k) for k in ("usd_per_gb_second_cache", "usd_per_gb_restored")},
        "date": snap.get("date"),
        "source": snap.get("source"),
        "estimate": True,
        "basis": "cold start without: measured init at the CPU share + one warm call; with: "
        "assumed restore time + one warm call (not measured: SnapStart runs only on Lambda)",
    }
