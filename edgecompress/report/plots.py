"""The report's plots as PNG bytes (matplotlib, Agg backend; imported only when drawing)."""

from __future__ import annotations

import io

import numpy as np


def _figure(width: float = 7.5, height: float = 4.0):
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=100)
    return plt, fig, ax


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def _samples(v: dict) -> list[float]:
    samples = v.get("latency_samples_ms")
    if samples:
        return samples
    lat = v.get("latency_ms") or {}
    return [lat[k] for k in ("min", "p50", "p90", "p95", "p99", "max") if lat.get(k) is not None]


def latency_plot(variants: list[dict]) -> bytes:
    """Warm latency distribution per variant (box: p25-p75, whiskers p1-p99, dots: p95)."""
    plt, fig, ax = _figure(7.5, 1.2 + 0.55 * max(1, len(variants)))
    data = [_samples(v) or [0.0] for v in variants]
    names = [v["name"] for v in variants]
    ax.boxplot(data, vert=False, whis=(1, 99), showfliers=False, tick_labels=names)
    p95 = [(v.get("latency_ms") or {}).get("p95") for v in variants]
    ax.scatter(
        [p if p is not None else np.nan for p in p95],
        range(1, len(variants) + 1),
        marker="D",
        color="tab:red",
        zorder=3,
        label="p95",
    )
    spread = max(max(d) for d in data) / max(min(min(d) for d in data), 1e-9)
    if spread > 30:
        ax.set_xscale("log")
    ax.set_xlabel("latency per call (ms)")
    ax.set_title("Warm latency distribution")
    ax.legend(loc="best")
    return _png(plt, fig)


def pareto_front(points: list[tuple[float, float, float]]) -> list[int]:
    """Indices of points not dominated in (size: lower, p95: lower, accuracy: higher)."""
    front = []
    for i, (s, t, a) in enumerate(points):
        dominated = any(
            s2 <= s and t2 <= t and a2 >= a and (s2, t2, a2) != (s, t, a)
            for j, (s2, t2, a2) in enumerate(points)
            if j != i
        )
        if not dominated:
            front.append(i)
    return front


def _accuracy_score(v: dict) -> float:
    """Higher is better; mse-like metrics are negated."""
    acc = v.get("accuracy") or {}
    value = acc.get("value")
    if value is None:
        return float("-inf")
    return -value if acc.get("metric") in ("mse", "mae", "rmse") else value


def pareto_plot(variants: list[dict]) -> bytes:
    """Size vs p95 latency, coloured by accuracy; the Pareto front ringed and joined."""
    plt, fig, ax = _figure()
    pts = [
        (v["size_bytes"] / 1024, (v.get("latency_ms") or {}).get("p95") or 0.0, _accuracy_score(v))
        for v in variants
    ]
    acc = np.array([p[2] if np.isfinite(p[2]) else np.nan for p in pts])
    sc = ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=acc, cmap="viridis", s=60, zorder=3)
    fig.colorbar(sc, ax=ax, label=(variants[0].get("accuracy") or {}).get("metric", "metric"))
    front = sorted(pareto_front(pts), key=lambda i: pts[i][0])
    ax.scatter(
        [pts[i][0] for i in front],
        [pts[i][1] for i in front],
        s=220,
        facecolors="none",
        edgecolors="tab:red",
        linewidths=1.5,
        label="Pareto front",
    )
    ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], "--", color="tab:red")
    for v, p in zip(variants, pts, strict=True):
        ax.annotate(v["name"], (p[0], p[1]), textcoords="offset points", xytext=(6, 6), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.2, y=0.15)
    ax.set_xlabel("model size (KiB)")
    ax.set_ylabel("p95 latency (ms)")
    ax.set_title("Size vs p95 latency vs accuracy")
    ax.legend(loc="best")
    return _png(plt, fig)


def cost_plot(variants: list[dict]) -> bytes:
    """Estimated $ per million invocations vs memory size, per variant and arch."""
    plt, fig, ax = _figure()
    styles = {"arm64": "-", "x86_64": "--"}
    markers = "osD^vP"
    for i, v in enumerate(variants):
        color, width = f"C{i % 10}", max(1.0, 4.0 - 1.2 * i)  # overlapping lines stay visible
        for arch in sorted({r["arch"] for r in v.get("cost_table") or []}):
            rows = sorted(
                (r for r in v["cost_table"] if r["arch"] == arch), key=lambda r: r["memory_mb"]
            )
            ax.plot(
                [r["memory_mb"] for r in rows],
                [r["usd_per_million"] for r in rows],
                styles.get(arch, ":"),
                marker=markers[i % len(markers)],
                linewidth=width,
                color=color,
                label=f"{v['name']} {arch}",
            )
        cost = v.get("cost")
        if cost:
            ax.scatter(
                [cost["memory_mb"]],
                [cost["usd_per_million"]],
                marker="*",
                s=220,
                color=color,
                edgecolors="black",
                zorder=4,
            )
    ax.set_xlabel("Lambda memory (MB)")
    ax.set_ylabel("$ per million invocations (estimate)")
    ax.set_title("Estimated cost vs memory size (★ recommended)")
    if ax.has_data():
        ax.legend(fontsize=7, loc="best")
    return _png(plt, fig)


def all_plots(report: dict) -> dict[str, bytes]:
    variants = report.get("variants") or []
    if not variants:
        return {}
    return {
        "latency": latency_plot(variants),
        "pareto": pareto_plot(variants),
        "cost": cost_plot(variants),
    }
