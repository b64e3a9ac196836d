"""Dollars per million requests on Google Cloud Functions (2nd gen) and Cloud Run, estimated
from the same latency measured on this machine as the Lambda figures (measure.cost), so the
report can put the three side by side. Every figure is an estimate and says so.

Model (request-based billing, prices in pricing_gcp.json):

- Duration at ``vcpu``: the measured 1-thread latency ``t1`` scaled by the CPU share below one
  vCPU (``t1 / vcpu``); at one vCPU or more it stays ``t1`` (the handler runs one intra-op
  thread per request: its session is made before functions-framework's gunicorn forks).
- Concurrency 1 (the function default): each request is billed its own duration rounded up
  to 100 ms. Concurrency N > 1: up to ``min(N, floor(vcpu))`` requests run at once and share
  the instance's billed time; under sustained load the 100 ms rounding is spread over many
  requests, so a request costs duration / parallel (at low traffic it costs as concurrency 1).
- Per request: billed seconds x (vCPU x $/vCPU-s + GiB x $/GiB-s), plus $ per request; a
  share ``init_fraction`` of requests is cold and pays its start-up time too.
- The free tier (per month and billing account) is not subtracted: these are marginal prices.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgecompress.gcp.target import default_cpu
from edgecompress.measure.cost import read_override

PRICING_FILE = Path(__file__).with_name("pricing_gcp.json")
GCF_MEMORY_MIB = [256, 512, 1024, 2048, 4096]  # each at its tier's default vCPU
CLOUDRUN_MEMORY_MIB = [512, 1024, 2048]  # each at the service's vCPU and concurrency


def load_pricing_gcp(override: str | Path | None = None) -> dict:
    """The built-in Google Cloud prices, with the keys of a user's JSON file laid over them."""
    pricing = json.loads(PRICING_FILE.read_text())
    if override is None:
        return pricing
    path = Path(override)
    user = read_override(path, "cost.pricing_gcp")
    merged = {**pricing, **user}
    merged["source"] = f"{user.get('source', path)} (override of {pricing['source']})"
    return merged


def billed_ms(duration_ms: float, pricing: dict) -> int:
    step = pricing.get("billing_granularity_ms", 100)
    return int(math.ceil(round(duration_ms / step, 9)) * step)


def duration_at_cpu(t1_ms: float, vcpu: float) -> float:
    return t1_ms / min(vcpu, 1.0)


def parallel_requests(vcpu: float, concurrency: int) -> int:
    return max(1, min(concurrency, math.floor(vcpu)))


def usd_per_million_gcp(
    duration_ms: float,
    memory_mib: int,
    vcpu: float,
    concurrency: int,
    pricing: dict,
    init_ms: float = 0.0,
    init_fraction: float = 0.0,
) -> dict:
    """Cost of one million requests of ``duration_ms`` (an estimate)."""
    per_second = (
        vcpu * pricing["usd_per_vcpu_second"] + memory_mib / 1024 * pricing["usd_per_gib_second"]
    )
    if concurrency == 1:
        billed = billed_ms(duration_ms, pricing)
    else:
        billed = duration_ms / parallel_requests(vcpu, concurrency)
    compute = billed / 1000 * per_second * 1e6
    init = 0.0
    if init_ms and init_fraction and pricing.get("startup_billed", True):
        init = init_fraction * init_ms / 1000 * per_second * 1e6
    requests = float(pricing["usd_per_million_requests"])
    return {
        "billed_ms": round(billed, 4),
        "compute_usd": compute,
        "init_usd": init,
        "requests_usd": requests,
        "usd_per_million": compute + init + requests,
    }


def region_note(region: str, pricing: dict) -> str:
    if region in pricing.get("tier1_regions", []):
        return f"{region} (Tier 1 prices)"
    return f"{region}: Tier 1 prices used (this region's tier is not in the data file)"


def target_rows(
    target: str,
    t1: dict,
    configs: list[tuple[int, float, int]],
    pricing: dict,
    init_ms: float = 0.0,
    init_fraction: float = 0.0,
) -> list[dict]:
    """One row per (memory MiB, vCPU, concurrency) of ``target`` ("gcf" | "cloudrun") from
    the 1-thread latency summary ``t1`` ({mean, p95, ...})."""
    rows = []
    for memory, vcpu, concurrency in configs:
        mean, p95 = duration_at_cpu(t1["mean"], vcpu), duration_at_cpu(t1["p95"], vcpu)
        init = init_ms / min(vcpu, 1.0)
        money = usd_per_million_gcp(mean, memory, vcpu, concurrency, pricing, init, init_fraction)
        basis = "1-thread latency x CPU share" if vcpu < 1 else "1-thread latency"
        if concurrency > 1:
            basis += (
                f"; {parallel_requests(vcpu, concurrency)} request(s) at once share instance time"
            )
        rows.append(
            {
                "target": target,
                "memory_mb": memory,
                "vcpu": vcpu,
                "concurrency": concurrency,
                "duration_ms": round(mean, 4),
                "p95_ms": round(p95, 4),
                "init_ms": round(init, 3),
                "init_fraction": init_fraction,
                **{k: round(v, 6) for k, v in money.items()},
                "basis": basis,
                "estimate": True,
            }
        )
    return rows


def gcf_configs(memory_mib: int, vcpu: float, concurrency: int) -> list[tuple[int, float, int]]:
    """The standard memory tiers (default vCPU, concurrency 1) and the configured function."""
    configs = [(m, default_cpu(m), 1) for m in GCF_MEMORY_MIB]
    return sorted(set(configs) | {(memory_mib, vcpu, concurrency)})


def cloudrun_configs(memory_mib: int, vcpu: float, concurrency: int) -> list[tuple]:
    configs = [(m, vcpu, concurrency) for m in CLOUDRUN_MEMORY_MIB if m <= 4096 * max(vcpu, 1)]
    return sorted(set(configs) | {(memory_mib, vcpu, concurrency)})


def lambda_rows(cost_table: list[dict]) -> list[dict]:
    """measure.cost's Lambda rows in the cross-target shape."""
    return [
        {
            "target": f"lambda-{r['arch']}",
            "memory_mb": r["memory_mb"],
            "vcpu": None,
            "concurrency": 1,
            "duration_ms": r["duration_ms"],
            "p95_ms": r["p95_ms"],
            "billed_ms": r["billed_ms"],
            "usd_per_million": r["usd_per_million"],
            "basis": r["basis"],
            "estimate": True,
        }
        for r in cost_table
    ]


def cheapest(rows: list[dict], p95_target_ms: float | None = None) -> dict | None:
    """The cheapest row (meeting the p95 target when one is set), and the cheapest per target."""
    meeting = [r for r in rows if p95_target_ms is None or r["p95_ms"] <= p95_target_ms]
    if not meeting:
        return None
    best = min(meeting, key=lambda r: (r["usd_per_million"], r["p95_ms"]))
    per_target = {}
    for r in sorted(meeting, key=lambda r: (r["usd_per_million"], r["p95_ms"])):
        per_target.setdefault(r["target"], r)
    return {"best": best, "per_target": per_target, "p95_target_ms": p95_target_ms}
