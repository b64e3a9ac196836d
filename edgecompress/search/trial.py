"""One trial: ``compress run`` of the trial's recipe in a child process, and what it measured.

A child process per trial (rather than ``run_recipe`` in the worker) because the trial is then
exactly what a user's ``compress run best.yaml`` does; a crash, a leak or a hang in torch,
onnxruntime or TensorFlow ends one trial, not the study; the trial can be stopped at its
timeout (its process group is terminated, and ``compress run`` removes its temp folder); and
each trial measures latency in a fresh process, not after other trials warmed or fragmented
this one. The cost is the child's start-up (~2 s of imports), small beside a trial.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgecompress.errors import EXIT_GATE_FAILED, EXIT_OK, EXIT_USAGE
from edgecompress.report.gates import MIB, accuracy_drop, candidates, describe
from edgecompress.search.schema import Objective

LAUNCH = "import sys; sys.argv[0] = 'compress'; from edgecompress.cli import main; main()"
STOP_GRACE_S = 15.0


@dataclass
class Outcome:
    """How a trial ended: ``passed``, ``gate_failed`` (measured; some gate failed), ``failed``
    (a step failed: validation, budget ...), ``invalid`` (the combination is not a valid
    recipe), ``timeout``. ``measurements`` are the deployed variant's numbers."""

    status: str
    reason: str | None = None
    measurements: dict | None = None
    gates: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    exit_code: int | None = None

    @property
    def measured(self) -> bool:
        return self.status in ("passed", "gate_failed")


def _zips(v: dict) -> list[dict]:
    return v.get("zips") or ([v["zip"]] if v.get("zip") else [])


def deployed_variant(report: dict) -> dict | None:
    """The variant a trial deploys: the one its Lambda zip was built from, else the cheapest
    candidate (by estimated $ per million)."""
    variants = candidates(report)
    zipped = [v for v in variants if _zips(v)]
    if zipped:
        return zipped[0]
    priced = [v for v in variants if (v.get("cost") or {}).get("usd_per_million") is not None]
    if priced:
        return min(priced, key=lambda v: v["cost"]["usd_per_million"])
    return variants[0] if variants else None


def measurements(report: dict) -> dict | None:
    """The deployed variant's numbers (every objective, plus what a reader needs)."""
    v = deployed_variant(report)
    if v is None:
        return None
    acc, cost, lat = v.get("accuracy") or {}, v.get("cost") or {}, v.get("latency_ms") or {}
    zips = [z for z in _zips(v) if z.get("arch") == cost.get("arch")] or _zips(v)  # the priced
    return {
        "variant": v["name"],
        "format": v.get("format"),
        "size_bytes": v.get("size_bytes"),
        "metric": acc.get("metric"),
        "accuracy": acc.get("value"),
        Objective.accuracy_drop.value: accuracy_drop(acc),
        Objective.p95_ms.value: lat.get("p95"),
        "p50_ms": lat.get("p50"),
        "cold_start_ms": v.get("cold_start_ms"),
        Objective.usd_per_million.value: cost.get("usd_per_million"),
        "memory_mb": cost.get("memory_mb"),
        "arch": cost.get("arch"),
        Objective.zip_mib.value: (
            round(min(z["zipped_bytes"] for z in zips) / MIB, 4) if zips else None
        ),
    }


def compact_gates(gates: list[dict]) -> list[dict]:
    keys = ("name", "gate", "limit", "value", "passed", "unit", "note")
    return [{k: g[k] for k in keys if k in g} for g in gates]


def constraints(gates: list[dict], kinds: list[str]) -> list[float]:
    """One number per configured gate kind, <= 0 when every gate of that kind passed: the
    worst relative excess (value - limit) / limit; 1.0 for a gate that was not measured."""
    out = []
    for kind in kinds:
        worst = 0.0 if not any(g["gate"] == kind for g in gates) else -1.0
        for g in (g for g in gates if g["gate"] == kind):
            if g.get("value") is None:
                worst = max(worst, 1.0)
            else:
                worst = max(worst, (g["value"] - g["limit"]) / max(abs(g["limit"]), 1e-12))
        out.append(round(worst, 9))
    return out


def violation(gates: list[dict]) -> float:
    """How far a measured trial is from passing: the sum of its failed gates' excess."""
    return sum(max(c, 0.0) for c in constraints(gates, sorted({g["gate"] for g in gates})))


def _error_text(log: Path) -> str:
    """The ``Error: ...`` paragraph ``compress run`` printed last (else the log's tail)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "no log"
    starts = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    chosen = lines[starts[-1] :] if starts else lines[-3:]
    text = " ".join(line.strip() for line in chosen if line.strip())
    return text.removeprefix("Error: ")[:600] or "no output"


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the trial's process group (``compress run`` cleans up), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_compress(recipe: Path, run_dir: Path, log: Path, timeout_s: float | None) -> int | None:
    """``compress run RECIPE -o RUN_DIR --force``, output to ``log``; the exit code, or None
    when it ran past ``timeout_s`` (then it was stopped)."""
    cmd = [sys.executable, "-c", LAUNCH, "run", str(recipe), "-o", str(run_dir), "--force"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            return proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            stop(proc)
            return None
        finally:
            stop(proc)  # interrupted (Ctrl-C, SIGTERM): the trial stops with the worker


def execute(recipe: Path, run_dir: Path, timeout_s: float | None = None) -> Outcome:
    """Run one trial recipe into ``run_dir`` and read its outcome."""
    log = recipe.with_name("log.txt")
    start = time.perf_counter()
    code = run_compress(recipe, run_dir, log, timeout_s)
    seconds = round(time.perf_counter() - start, 2)
    if code is None:
        return Outcome(
            "timeout", f"stopped after {timeout_s:g} s (search.trial_timeout_s)", seconds=seconds
        )
    if code not in (EXIT_OK, EXIT_GATE_FAILED):
        status = "invalid" if code == EXIT_USAGE else "failed"
        return Outcome(status, _error_text(log), seconds=seconds, exit_code=code)
    return read_outcome(run_dir, seconds, code)


def read_outcome(run_dir: Path, seconds: float = 0.0, code: int = EXIT_OK) -> Outcome:
    """The outcome of a finished ``compress run`` from its manifest.json."""
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        return Outcome(
            "failed", f"no manifest.json in {run_dir}: {exc}", seconds=seconds, exit_code=code
        )
    report = manifest.get("report") or {}
    gates = compact_gates(manifest.get("gates") or report.get("gates") or [])
    measured = measurements(report)
    if measured is None:
        return Outcome(
            "failed",
            "the run exported no variant to measure (add 'export:')",
            gates=gates,
            seconds=seconds,
            exit_code=code,
        )
    bad = [g for g in gates if not g["passed"]]
    status = "gate_failed" if bad else "passed"
    reason = "; ".join(describe(g) for g in bad) or None
    return Outcome(status, reason, measured, gates, seconds, code)
