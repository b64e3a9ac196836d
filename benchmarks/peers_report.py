"""benchmarks/results/minilm-peers.md: the table, the machine, versions and the targets."""

from __future__ import annotations

import datetime
import platform
from importlib import metadata

from edgecompress import showcase as sc

PACKAGES = (
    "torch",
    "onnx",
    "onnxruntime",
    "optimum",
    "optimum-onnx",
    "transformers",
    "tensorflow",
    "onnx2tf",
    "ai-edge-litert",
    "numpy",
)
TARGETS = {"ratio": 0.5, "mean_cos": 0.99, "min_cos": 0.97, "agreement": 0.98}


def _mib(n) -> str:
    return "" if n is None else f"{n / 2**20:.1f} MiB"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def timing_table(variants, threads: int, input_set: str) -> list[str]:
    base = next(v for v in variants if v.key == "b").times.get((input_set, threads), {})
    rows = [
        f"### {input_set}, {threads} thread(s)",
        "",
        "| variant | p50 ms | p95 ms | p50 / (b) | file | zip | mean cos | min cos | "
        "NN agreement |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for v in variants:
        if not v.ok:
            rows.append(f"| {v.label} | — | — | — | | | | | failed: {v.error} |")
            continue
        t, q = v.times.get((input_set, threads), {}), v.quality
        ratio = t["p50"] / base["p50"] if t and base else float("nan")
        zip_cell = _mib(v.zip_bytes) if v.key == "g" else ""
        rows.append(
            f"| {v.label} | {t['p50']:.2f} | {t['p95']:.2f} | {ratio:.3f} | "
            f"{_mib(v.size_bytes)} | {zip_cell} | {q['mean_cos']:.4f} | "
            f"{q['min_cos']:.4f} | {100 * q['agreement']:.1f}% |"
        )
    return rows + [""]


def targets(variants, threads: list[int]) -> list[str]:
    by = {v.key: v for v in variants}
    g, b, c = by["g"], by["b"], by.get("c")
    lines = ["## Targets for (g), batch 1 / length 128 / 1 thread", ""]
    if not g.ok or 1 not in threads:
        return lines + ["(g) was not measured at 1 thread: no verdict.", ""]
    tg, tb = g.times[("b1-L128", 1)], b.times[("b1-L128", 1)]
    ratio, q = tg["p50"] / tb["p50"], g.quality
    checks = [
        ("p50 / onnxruntime fp32", ratio, TARGETS["ratio"], False),
        ("mean cosine", q["mean_cos"], TARGETS["mean_cos"], True),
        ("min cosine", q["min_cos"], TARGETS["min_cos"], True),
        ("nearest-neighbour agreement", q["agreement"], TARGETS["agreement"], True),
    ]
    for name, value, limit, higher in checks:
        met = value >= limit if higher else value <= limit
        sign = ">=" if higher else "<="
        miss = "" if met else f" — MISSED by {abs(value - limit):.4f}"
        lines.append(
            f"- {name}: {value:.4f} (target {sign} {limit}) {'met' if met else 'not met'}{miss}"
        )
    if c is not None and c.ok:
        tc = c.times[("b1-L128", 1)]
        faster = tg["p50"] < tc["p50"]
        better = q["mean_cos"] >= c.quality["mean_cos"] - 1e-4
        lines.append(
            f"- faster than (c) at equal or better cosine: p50 {tg['p50']:.2f} vs "
            f"{tc['p50']:.2f} ms, mean cosine {q['mean_cos']:.4f} vs "
            f"{c.quality['mean_cos']:.4f}: {'met' if faster and better else 'not met'}"
        )
    return lines + [""]


def header(args, bundle, n_sentences: int, seconds: float) -> list[str]:
    cpu = sc.cpu_info()
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return [
        "# all-MiniLM-L6-v2 on CPU: edgecompress and its peers",
        "",
        f"- date: {datetime.date.today().isoformat()}; wall time {seconds / 60:.1f} min",
        f"- model: {args.model} ({bundle.source.get('path')})",
        f"- CPU: {cpu['model']}, {cpu['cores']} logical cores, {cpu['machine']}; {flags}",
        f"- Python {platform.python_version()}; {versions}",
        f"- accuracy: torch fp32 embeddings as reference, {n_sentences} test sentences "
        "(edgecompress.data sentences), each at batch 1 and its own length",
        f"- latency: perf_counter, {args.runs} timed calls per cell after 3 warmup calls, "
        "variants interleaved in blocks of 10 calls (a shared machine loads them alike); "
        "b1-L128 = batch 1 padded to 128 tokens (32 sentences cycled), b1-real = batch 1 at "
        "each sentence's own length, no padding",
        "",
    ]


def render(variants, args, bundle, n_sentences: int, seconds: float) -> str:
    lines = header(args, bundle, n_sentences, seconds)
    lines += ["## Results", ""]
    for threads in args.thread_list:
        for input_set in ("b1-L128", "b1-real"):
            lines += timing_table(variants, threads, input_set)
    lines += targets(variants, args.thread_list)
    lines += ["## How each variant was made", ""]
    lines += [f"- {v.label}: {v.note or v.error}" for v in variants]
    return "\n".join(lines) + "\n"
