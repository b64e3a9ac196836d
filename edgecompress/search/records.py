"""A study's trials as plain records, its Pareto front, the best trial and the closest one.

Every number comes from the trials' user attributes (written by the worker that ran them), so
any machine that shares the storage can render the whole study.
"""

from __future__ import annotations

from edgecompress.search.trial import violation

MEASURED = ("passed", "gate_failed")


def record(t) -> dict:
    """One Optuna FrozenTrial as a JSON-able dict."""
    a = t.user_attrs
    start, end = t.datetime_start, t.datetime_complete
    return {
        "number": t.number,
        "state": t.state.name,
        "status": a.get("status", "running" if t.state.name == "RUNNING" else "unknown"),
        "reason": a.get("reason"),
        "values": a.get("values", {}),
        "objectives": list(t.values) if t.values is not None else None,
        "measurements": a.get("measurements"),
        "gates": a.get("gates", []),
        "constraints": a.get("constraints"),
        "passed": a.get("status") == "passed",
        "seconds": a.get("seconds"),
        "run_dir": a.get("run_dir"),
        "host": a.get("host"),
        "worker": a.get("worker"),
        "duplicate_of": a.get("duplicate_of"),
        "retry_of": a.get("retry_of"),
        "recipe": a.get("recipe"),
        "started": start.isoformat(timespec="seconds") if start else None,
        "finished": end.isoformat(timespec="seconds") if end else None,
    }


def dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def pareto(records: list[dict]) -> list[int]:
    """Trial numbers on the Pareto front of the objectives: among the trials that passed every
    gate, or among all measured trials when none did (repeats of a trial's values left out)."""
    own = [r for r in records if r["objectives"] is not None and r["duplicate_of"] is None]
    pool = [r for r in own if r["passed"]] or [r for r in own if r["status"] in MEASURED]
    front = [
        r
        for r in pool
        if not any(dominates(o["objectives"], r["objectives"]) for o in pool if o is not r)
    ]
    return [r["number"] for r in front]


def cost_key(r: dict) -> tuple:
    m = r["measurements"] or {}
    usd = m.get("usd_per_million")
    drop = m.get("accuracy_drop")
    usd = float("inf") if usd is None else usd
    return (usd, 1e9 if drop is None else drop, r["number"])


def best(records: list[dict]) -> dict | None:
    """The cheapest (estimated $ per million) trial that passed every gate; ties go to the
    smaller accuracy drop, then the earlier trial."""
    passed = [r for r in records if r["passed"] and r.get("recipe")]
    return min(passed, key=cost_key) if passed else None


def closest(records: list[dict]) -> dict | None:
    """The measured trial nearest to passing: the smallest summed relative gate excess."""
    measured = [r for r in records if r["status"] in MEASURED]
    if not measured:
        return None
    return min(measured, key=lambda r: (violation(r["gates"]), *cost_key(r)))


def counts(records: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        out[r["status"]] = out.get(r["status"], 0) + 1
    return dict(sorted(out.items()))
