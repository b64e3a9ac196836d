"""Warm latency of any Runner (torch, onnxruntime, LiteRT) and of a Lambda zip's handler.

Warm-up calls are excluded; then ``runs`` timed calls (or as many as fit ``time_budget_s``)
cycle through feeds drawn from the task's eval data. Batch size and sequence length are the
caller's (they shape the feeds); threads are set when the runner is opened.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np

from edgecompress.data import Split
from edgecompress.measure.coldstart import run_zip_child
from edgecompress.progress import progress

MAX_SAMPLES_KEPT = 400  # raw samples kept in report.json for the distribution plot


def summarize_ms(samples_ms: list[float] | np.ndarray, batch: int = 1) -> dict:
    """mean / p50 / p90 / p95 / p99 / min / max in ms and throughput in samples/s."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise ValueError("no latency samples to summarize")
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    mean = float(a.mean())
    return {
        "mean": mean,
        "p50": float(p50),
        "p90": float(p90),
        "p95": float(p95),
        "p99": float(p99),
        "min": float(a.min()),
        "max": float(a.max()),
        "std": float(a.std()),
        "runs": int(a.size),
        "batch": batch,
        "throughput_per_s": batch * 1000.0 / mean if mean > 0 else float("inf"),
    }


def keep_samples(samples_ms: list[float], limit: int = MAX_SAMPLES_KEPT) -> list[float]:
    """An evenly spaced subset of the raw samples (rounded), for plots."""
    step = max(1, int(np.ceil(len(samples_ms) / limit)))
    return [round(float(x), 4) for x in samples_ms[::step]]


def time_calls(
    call: Callable[[object], object],
    inputs: list,
    runs: int = 200,
    warmup: int = 10,
    time_budget_s: float | None = None,
    label: str | None = "latency",
) -> list[float]:
    """Milliseconds of each timed ``call(input)`` (``perf_counter``), cycling ``inputs``;
    warm-up excluded. The one timing loop of edgecompress and its benchmark scripts.

    With ``time_budget_s``, stops once the timed calls used that much time (``runs`` stays
    the upper bound, and at least one call is timed). ``label=None``: no progress bar (no
    display thread beside short, interleaved timings)."""
    if not inputs:
        raise ValueError("no inputs to time")
    for i in range(warmup):
        call(inputs[i % len(inputs)])
    samples: list[float] = []
    spent = 0.0
    with progress(label, total=runs) if label else contextlib.nullcontext() as bar:
        for i in range(runs):
            item = inputs[i % len(inputs)]
            start = time.perf_counter()
            call(item)
            elapsed = time.perf_counter() - start
            samples.append(elapsed * 1000.0)
            spent += elapsed
            if bar is not None:
                bar.advance()
            if time_budget_s is not None and spent >= time_budget_s:
                break
    return samples


def measure_latency(
    runner,
    feeds_list: list[dict[str, np.ndarray]],
    runs: int = 200,
    warmup: int = 10,
    time_budget_s: float | None = None,
    label: str = "latency",
) -> dict:
    """Latency summary (ms) of ``runner.run`` over ``feeds_list``, plus kept raw samples."""
    samples = time_calls(runner.run, feeds_list, runs, warmup, time_budget_s, label)
    batch = _batch_of(feeds_list[0])
    return {**summarize_ms(samples, batch), "samples": keep_samples(samples)}


def _batch_of(feeds: dict[str, np.ndarray]) -> int:
    first = next(iter(feeds.values()), None)
    return int(first.shape[0]) if first is not None and first.ndim else 1


def fit_seq_len(feeds: dict[str, np.ndarray], seq_len: int | None) -> dict[str, np.ndarray]:
    """Pad (with 0, so masks stay off) or cut 2-D token inputs to exactly ``seq_len``."""
    if seq_len is None:
        return feeds
    out = {}
    for name, a in feeds.items():
        if a.ndim == 2 and np.issubdtype(a.dtype, np.integer):
            if a.shape[1] >= seq_len:
                a = a[:, :seq_len]
            else:
                a = np.pad(a, ((0, 0), (0, seq_len - a.shape[1])))
        out[name] = np.ascontiguousarray(a)
    return out


def feeds_from_split(
    bundle, split, batch: int = 1, n: int = 32, seq_len: int | None = None
) -> list[dict[str, np.ndarray]]:
    """``n`` feeds of ``batch`` real samples each from ``split`` (wrapping around), made by
    ``bundle.feeds`` (so text is tokenized as in evaluation)."""
    size = len(split)
    if size == 0:
        raise ValueError("cannot draw benchmark inputs from an empty split")
    feeds_list = []
    for i in range(n):
        idx = [(i * batch + j) % size for j in range(batch)]
        feeds_list.append(fit_seq_len(bundle.feeds(_select(split, idx)), seq_len))
    return feeds_list


def _select(split, idx: list[int]):
    return Split(
        x=None if split.x is None else split.x[idx],
        texts=None if split.texts is None else [split.texts[i] for i in idx],
        labels=None if split.labels is None else split.labels[idx],
    )


def measure_zip_latency(
    zip_path, events: list[dict], runs: int = 50, warmup: int = 3, timeout_s: float = 600
) -> dict:
    """Warm latency of a Lambda zip's ``handler(event, None)``: the zip is unpacked and its
    handler imported in a fresh subprocess, which times the calls."""

    result = run_zip_child(zip_path, events, runs=runs, warmup=warmup, timeout_s=timeout_s)
    samples = result["warm_ms"]
    return {**summarize_ms(samples, 1), "samples": keep_samples(samples)}
