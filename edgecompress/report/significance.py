"""Is NEW really better (or worse) than OLD, or is the difference noise?

Accuracy: a paired bootstrap over the per-sample scores both reports kept for the same eval
samples (``accuracy_samples``; same ``eval_sha256``): resample the samples with replacement
(fixed seed, so a release gate is reproducible), take the metric difference each time; the
2.5 / 97.5 percentiles are the 95 % confidence interval, and the difference is significant
when the interval excludes 0. Latency: a Mann-Whitney U rank test (two-sided, normal
approximation with tie and continuity corrections) on the latency samples both reports kept
(``latency_samples_ms``), with the Hodges-Lehmann shift (median of pairwise differences).
Both are implemented with numpy alone.
"""

from __future__ import annotations

import math

import numpy as np

from edgecompress.metrics import higher_is_better

RESAMPLES = 2000
SEED = 0
ALPHA = 0.05
MAX_PAIRS = 4_000_000  # Hodges-Lehmann: pairwise differences computed at most


def paired_bootstrap(
    old: np.ndarray,
    new: np.ndarray,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    alpha: float = ALPHA,
) -> dict:
    """Mean difference ``new - old`` of paired per-sample scores, its (1 - alpha) percentile
    interval and a two-sided bootstrap p-value."""
    old, new = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if old.shape != new.shape or old.ndim != 1 or len(old) < 2:
        raise ValueError(
            f"paired samples must be two equal 1-d arrays, got {old.shape}, {new.shape}"
        )
    diff = new - old
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    chunk = max(1, 2_000_000 // len(diff))
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, len(diff), size=(stop - start, len(diff)))
        means[start:stop] = diff[idx].mean(axis=1)
    low, high = np.percentile(means, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    below, above = float(np.mean(means <= 0)), float(np.mean(means >= 0))
    return {
        "test": "paired bootstrap",
        "n": int(len(diff)),
        "delta": float(diff.mean()),
        "ci": [float(low), float(high)],
        "confidence": 1 - alpha,
        "p_value": min(1.0, 2 * min(below, above)),
        "significant": bool(low > 0 or high < 0),
        "resamples": resamples,
        "seed": seed,
        "discordant": int(np.count_nonzero(diff)),
    }


def _ranks(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average ranks (1-based) and the sizes of the tie groups."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    counts = np.diff(np.r_[starts, len(values)])
    average = starts + (counts + 1) / 2.0  # mean of 1-based ranks start+1 .. start+count
    ranks = np.empty(len(values))
    ranks[order] = np.repeat(average, counts)
    return ranks, counts


def mann_whitney(old: np.ndarray, new: np.ndarray) -> dict:
    """Two-sided Mann-Whitney U test of two independent samples (normal approximation, tie
    and continuity corrected), U of ``new``, and P(new < old) + half the ties."""
    x, y = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        raise ValueError(f"rank test needs at least 2 samples each, got {n1} and {n2}")
    ranks, ties = _ranks(np.concatenate([x, y]))
    u_new = float(ranks[n1:].sum() - n2 * (n2 + 1) / 2)
    n = n1 + n2
    mean = n1 * n2 / 2
    var = n1 * n2 / 12 * ((n + 1) - float((ties**3 - ties).sum()) / (n * (n - 1)))
    if var <= 0:
        z, p = 0.0, 1.0
    else:
        z = (abs(u_new - mean) - 0.5) / math.sqrt(var)
        z = max(z, 0.0) * (1 if u_new >= mean else -1)
        p = min(1.0, math.erfc(abs(z) / math.sqrt(2)))
    return {
        "test": "Mann-Whitney U",
        "u": u_new,
        "z": z,
        "p_value": p,
        "p_new_faster": 1.0 - u_new / (n1 * n2),
        "n_old": n1,
        "n_new": n2,
    }


def hodges_lehmann(old: np.ndarray, new: np.ndarray, max_pairs: int = MAX_PAIRS) -> float:
    """Median of all ``new_j - old_i`` (subsampled evenly when there are too many pairs)."""
    x, y = np.sort(np.asarray(old, float)), np.sort(np.asarray(new, float))
    while len(x) * len(y) > max_pairs:
        x, y = x[::2], y[::2]
    return float(np.median(y[None, :] - x[:, None]))


def latency_significance(old_ms, new_ms, alpha: float = ALPHA) -> dict:
    """Rank test of two latency sample sets; ``delta_ms`` is the Hodges-Lehmann shift."""
    test = mann_whitney(old_ms, new_ms)
    shift = hodges_lehmann(old_ms, new_ms)
    median_old = float(np.median(old_ms))
    significant = test["p_value"] < alpha and shift != 0
    better = None
    if significant:
        better = "new" if shift < 0 else "old"
    return {
        **test,
        "delta_ms": shift,
        "relative": shift / median_old if median_old else None,
        "median_old_ms": median_old,
        "median_new_ms": float(np.median(new_ms)),
        "alpha": alpha,
        "significant": bool(significant),
        "better": better,
    }


def accuracy_significance(old: dict, new: dict, alpha: float = ALPHA) -> dict:
    """Paired bootstrap of two ``accuracy_samples`` entries, or why it cannot be done."""
    why = unpaired_reason(old, new)
    if why:
        return {"test": "paired bootstrap", "skipped": why}
    result = paired_bootstrap(np.array(old["values"]), np.array(new["values"]), alpha=alpha)
    metric = new.get("metric") or old.get("metric") or "accuracy"
    better = None
    if result["significant"]:
        up = result["delta"] > 0
        better = "new" if up == higher_is_better(metric) else "old"
    return {**result, "metric": metric, "score": new.get("score"), "better": better}


def unpaired_reason(old: dict | None, new: dict | None) -> str | None:
    if not old or not new:
        return "a report has no per-sample accuracy scores (made before they were kept)"
    if old.get("eval_sha256") != new.get("eval_sha256"):
        return "the reports were evaluated on different samples (eval_sha256 differs)"
    if old.get("score") != new.get("score") or len(old["values"]) != len(new["values"]):
        return "the per-sample scores are not of the same kind / count"
    return None


def variant_significance(old: dict, new: dict, alpha: float = ALPHA) -> dict:
    """Accuracy and latency significance of one matched variant pair (report.json entries)."""
    acc = accuracy_significance(old.get("accuracy_samples"), new.get("accuracy_samples"), alpha)
    lat_old, lat_new = old.get("latency_samples_ms"), new.get("latency_samples_ms")
    if lat_old and lat_new and len(lat_old) >= 2 and len(lat_new) >= 2:
        lat = latency_significance(lat_old, lat_new, alpha)
    else:
        lat = {"test": "Mann-Whitney U", "skipped": "a report kept no latency samples"}
    return {"accuracy": acc, "latency": lat}


def verdict(sig: dict) -> str:
    """One sentence a release gate can quote."""
    parts = []
    acc, lat = sig["accuracy"], sig["latency"]
    if "skipped" in acc:
        parts.append(f"accuracy: not tested ({acc['skipped']})")
    else:
        level = f"{acc['confidence']:.0%}"
        ci = f"{level} CI [{acc['ci'][0]:+.4f}, {acc['ci'][1]:+.4f}]"
        if acc["significant"]:
            who = "B (new)" if acc["better"] == "new" else "A (old)"
            parts.append(f"{who} is better in {acc['metric']}: {acc['delta']:+.4f}, {ci}")
        else:
            parts.append(f"no significant {acc['metric']} difference: {acc['delta']:+.4f}, {ci}")
    if "skipped" in lat:
        parts.append(f"latency: not tested ({lat['skipped']})")
    else:
        shift = f"{lat['delta_ms']:+.3f} ms median shift, p={lat['p_value']:.2g}"
        if lat["significant"]:
            who = "B (new)" if lat["better"] == "new" else "A (old)"
            parts.append(f"{who} is faster: {shift}")
        else:
            parts.append(f"no significant latency difference: {shift}")
    return "; ".join(parts)
