"""The report of benchmarks/pruning.py: benchmarks/results/pruning.md from its rows (one per
net: parameters, MACs, accuracy, onnxruntime p50 at both optimization levels, Reorder nodes,
targets reached)."""

from __future__ import annotations

import datetime
from pathlib import Path

from edgecompress.compressors.prune_targets import nchwc_block
from edgecompress.measure.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _shrink(d: dict, new: str = "pruned") -> str:
    return f"{d['unpruned']:,} -> {d[new]:,} ({d[new] / d['unpruned']:.2f}x)"


def _ratio(p50: dict, new: str = "pruned") -> str:
    return f"{p50[new] / p50['unpruned']:.2f} ({p50['unpruned']:.3f} -> {p50[new]:.3f} ms)"


def table_rows(rows: list[dict]) -> list[str]:
    lines = [
        "| model | params before -> after | MACs before -> after | test acc trained / "
        "pruned / recovered | p50 pruned/unpruned, batch 1 | batch 32 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        a = r["acc"]
        accuracy = f"{_pct(a['trained'])} / {_pct(a['pruned'])} / {_pct(a['finetuned'])}"
        lines.append(f"| {r['name']} | {_shrink(r['params'])} | {_shrink(r['macs'])} | "
                     f"{accuracy} | {_ratio(r['p50'][1])} | {_ratio(r['p50'][32])} |")  # fmt: skip
    return lines


def distill_rows(rows: list[dict]) -> list[str]:
    lines = [
        "| teacher | student params | student acc / teacher acc | target met | "
        "p50 student/teacher, batch 1 | batch 32 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        p, a = r["params"], r["acc"]
        share, kept = p["student"] / p["unpruned"], a["student"] / a["trained"]
        met = "yes" if share <= 1 / 3 and kept >= 0.97 else "no"
        accuracy = f"{_pct(a['student'])} / {_pct(a['trained'])} = {kept:.4f}"
        speed = f"{_ratio(r['p50'][1], 'student')} | {_ratio(r['p50'][32], 'student')}"
        lines.append(f"| {r['name']} | {_shrink(p, 'student')} | {accuracy} | {met} | {speed} |")
    return lines


def nchwc_rows(rows: list[dict]) -> list[str]:
    lines = [
        "| model | round_to 8: MACs, acc recovered | p50 batch 1 | batch 32 | "
        f"round_to auto ({nchwc_block()}): MACs, acc | p50 batch 1 | batch 32 | Reorder nodes: "
        "unpruned / round_to 8 / auto |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = []
        for new, acc in (("pruned", "finetuned"), ("nchwc", "nchwc")):
            m = r["macs"][new] / r["macs"]["unpruned"]
            cells += [f"{m:.2f}x, {_pct(r['acc'][acc])}", _ratio(r["p50"][1], new),
                      _ratio(r["p50"][32], new)]  # fmt: skip
        cells.append(" / ".join(str(r["reorders"][k]) for k in ("unpruned", "pruned", "nchwc")))
        lines.append(f"| {r['name']} | {' | '.join(cells)} |")
    return lines


def _target_cell(t: dict) -> str:
    if "error" in t:
        return f"not reachable: {t['error']}"
    reached = [f"{k.split('_')[0]} {t[k]:.2f}" for k in ("params_share", "macs_share",
               "latency_share") if t.get(k) is not None]  # fmt: skip
    return f"amount {t['amount_chosen']:.3f}: " + ", ".join(reached)


def targets_rows(rows: list[dict]) -> list[str]:
    lines = ["| model | `target: {macs: 0.4}` (round_to 8) | `target: {latency: 0.75}` "
             "(round_to auto) |", "| --- | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['name']} | {' | '.join(_target_cell(t) for t in r['targets'])} |")
    return lines


def layout_rows(rows: list[dict]) -> list[str]:
    lines = [
        "| model | p50 pruned/unpruned, batch 1 | batch 32 | student/unpruned, batch 1 | "
        "batch 32 |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        t = r["p50_extended"]
        cells = [_ratio(t[1]), _ratio(t[32]), _ratio(t[1], "student"), _ratio(t[32], "student")]
        lines.append(f"| {r['name']} | {' | '.join(cells)} |")
    return lines


NCHWC_TEXT = """## onnxruntime's NCHWc layout and `round_to: auto`

At its default level (ORT_ENABLE_ALL) onnxruntime rewrites convolutions into its NCHWc layout:
blocks of {block} channels on this CPU (16 with AVX-512F, 8 with AVX2). Its profiler (run once
by hand on this machine: concat net, batch 32, one thread) shows why pruning to 8 channels
bought nothing there: a convolution's output channels are padded up to whole blocks, so the
pruned 8->8 3x3 branch costs what the unpruned 16->16 one does (67 vs 78 us per run); and a
Concat stays in the blocked layout only when every input is whole blocks: the pruned net's
8-channel branches leave it (Reorder nodes below) and the MaxPools after them run in plain
NCHW (34 vs 7.5 us). `round_to: auto` rounds the channels kept to onnxruntime's block on the
host (here {block}): groups narrower than two blocks stay whole (so the width-16 nets shrink
less), wider ones shrink by whole blocks and the graph stays in NCHWc, where the latency
follows the MACs (see the concat net at width 32, whose halved channels are all whole blocks).
Same interleaved run as the first table (p50 pruned / unpruned; both recovered alike, test
accuracy after recovery; Reorder nodes counted in onnxruntime's optimized graph):"""

TARGETS_TEXT = """## Targets

`target: {macs: 0.4}` and `{latency: 0.75}` instead of an amount: the channel share is
bisected (11 candidates for params/MACs, 6 for latency; amounts that remove the same channels
are measured once) on pruned copies, MACs with Torch-Pruning's counter, latency as the p50 ratio
of an exported copy to the unpruned model on one onnxruntime thread at batch 1, timed
interleaved (300 calls each). Shares reached (kept / unpruned); the smallest amount that meets
the target is chosen, and rounding makes the share a step function of the amount:"""

LAYOUT_TEXT = """The tables above use onnxruntime's default optimization level (ORT_ENABLE_ALL),
with its NCHWc layout transform; the same files at ORT_ENABLE_EXTENDED (no layout transform), timed
in the same interleaved run:"""


def write_report(rows: list[dict], args, seconds: float) -> Path:
    from importlib.metadata import version

    m = machine_info()
    head = [
        "# Structured pruning of CNNs on digits (`python benchmarks/pruning.py`)",
        "",
        f"Date {datetime.date.today()}, {m['cpu']} ({m['arch']}, {m['cores']} cores, shared: "
        "compare ratios, not milliseconds), Python "
        f"{m['python']}, torch {version('torch')}, torch-pruning {version('torch-pruning')}, "
        f"onnxruntime {version('onnxruntime')}. {seconds:.0f} s in all.",
        "",
        f"`prune: {{method: structured, amount: 0.5}}` (L1 group magnitude, round_to 8), then "
        f"{args.finetune} epochs of recovery: `recovery: {args.recovery}` (AdamW 3e-3, best val "
        "epoch kept; distill: from the unpruned model, T 4, alpha 0.5). Nets other than "
        f"the shipped digits CNN trained here for {args.epochs} epochs (seed 0, torch on one "
        "thread). Accuracy on the "
        "360-image test split; MACs for one 1x8x8 image; onnxruntime p50 on one thread "
        f"(TorchScript export, opset 17), batch 1 ({args.runs} runs) and batch 32, models "
        "interleaved in blocks of 10 calls.",
        "",
    ]
    body = table_rows(rows) + ["", "## `distill: {width: 0.5}`", ""]
    body += [
        f"A student derived from each trained teacher by the same channel groups (half of each "
        f"group's strongest channels, round_to 8), trained by KD for up to {args.distill} epochs "
        "(T 4, alpha 0.5, early stop on val, patience 8). Target: <= 1/3 of the teacher's "
        "parameters at >= 97 % of its accuracy.",
        "",
    ]
    body += distill_rows(rows) + ["", NCHWC_TEXT.format(block=nchwc_block()), ""]
    body += nchwc_rows(rows) + ["", TARGETS_TEXT, ""] + targets_rows(rows)
    body += ["", "## onnxruntime without its NCHWc layout", "", LAYOUT_TEXT, ""]
    path = RESULTS / "pruning.md"
    path.write_text("\n".join(head + body + layout_rows(rows)) + "\n")
    return path
