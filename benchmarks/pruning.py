"""Structured pruning of CNNs on digits: parameters, FLOPs, accuracy and onnxruntime latency.

    python benchmarks/pruning.py [--epochs 20] [--finetune 10] [--distill 30] [--runs 2000]

For each CNN (the shipped digits CNN, and ResNet-, MobileNetV3- and concatenation-style nets
from edgecompress.zoo trained here on the digits train split, seed 0):
``prune: {method: structured, amount: 0.5}`` then fine-tuning; parameters and MACs
(Torch-Pruning's counter) before and after; test accuracy as trained, right after pruning and
after fine-tuning; onnxruntime p50 at batch 1 and 32 on one thread, the unpruned, pruned and
distilled models interleaved in one run (so the ratios hold on a shared machine); and
``distill: {width: 0.5}``: a student derived from the teacher by the same channel groups,
trained by knowledge distillation (target: <= 1/3 of the parameters at >= 97 % of the
teacher's accuracy). Writes benchmarks/results/pruning.md.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

from bench_helpers import ort_run, ort_session, time_interleaved

from edgecompress.compressors.distill import DistillConfig, distill
from edgecompress.compressors.prune import PruneConfig, prune
from edgecompress.context import RunContext
from edgecompress.data import load_digits
from edgecompress.exporters.onnx.export import export_module
from edgecompress.loaders import load_factory
from edgecompress.measure.latency import summarize_ms
from edgecompress.measure.machine import machine_info
from edgecompress.model import TaskSpec

RESULTS = Path(__file__).resolve().parent / "results"
LEVELS = ("all", "extended")  # onnxruntime graph optimization levels timed
MODELS = {  # name -> (factory, shipped weights or None: trained here)
    "digits CNN (plain)": (
        "edgecompress.zoo:digits_cnn",
        "package://edgecompress.zoo/digits_cnn.pt",
    ),
    "ResNet-style": ("edgecompress.zoo:digits_resnet", None),
    "MobileNetV3-style": ("edgecompress.zoo:digits_mobilenet", None),
    "concat (Inception/DenseNet-style)": ("edgecompress.zoo:digits_concat", None),
}


def trained_bundle(factory: str, weights: str | None, data, epochs: int):
    from edgecompress.zoo.train import train_classifier

    bundle = load_factory(factory, weights, TaskSpec())
    if weights is None:
        train_classifier(bundle.module, data.train, epochs=epochs)
    return bundle


def macs(bundle) -> int:
    import torch
    import torch_pruning as tp

    ops, _ = tp.utils.count_ops_and_params(bundle.module.eval(), torch.zeros(1, 1, 8, 8))
    return int(ops)


def latency(bundles: dict, data, folder: Path, runs: int) -> dict:
    """{level: {batch: {name: p50 ms}}}; every model and level timed interleaved with the rest.
    Levels: onnxruntime's default 'all' (with its NCHWc layout transform) and 'extended'."""
    runners = {}
    for name, bundle in bundles.items():
        path = folder / f"{name}.onnx"
        export_module(bundle, bundle.module, path, opset=17, exporter="torchscript")
        for level in LEVELS:
            runners[(level, name)] = ort_run(ort_session(path, threads=1, level=level))
    x = data.test.x
    out = {level: {} for level in LEVELS}
    for batch, n in ((1, runs), (32, max(100, runs // 8))):
        feeds = [{"image": x[i : i + batch]} for i in range(0, 64 * batch, batch)]
        times = time_interleaved(runners, [f for f in feeds if len(f["image"]) == batch], n)
        for (level, name), t in times.items():
            out[level].setdefault(batch, {})[name] = summarize_ms(t)["p50"]
    return out


def one_model(name: str, factory: str, weights, data, args, folder: Path) -> dict:
    start = time.perf_counter()
    teacher = trained_bundle(factory, weights, data, args.epochs)
    ctx = RunContext(data, folder)
    ctx.set_baseline(teacher)
    config = PruneConfig(method="structured", amount=0.5, finetune_epochs=args.finetune,
                         lr=3e-3, batch_size=64)  # fmt: skip
    pruned, stats = prune(teacher, config, ctx)
    student, dstats = distill(
        teacher, DistillConfig(width=0.5, epochs=args.distill, patience=8), ctx
    )
    bundles = {"unpruned": teacher, "pruned": pruned, "student": student}
    speed = latency(bundles, data, folder, args.runs)
    row = {
        "name": name,
        "params": {k: b.param_count() for k, b in bundles.items()},
        "macs": {k: macs(b) for k, b in bundles.items()},
        "acc": {"trained": stats["metric_before"], "pruned": stats["metric_after_prune"],
                "finetuned": stats["metric_after"], "student": dstats["metric_after"]},
        "p50": speed["all"],
        "p50_extended": speed["extended"],
        "seconds": time.perf_counter() - start,
    }  # fmt: skip
    print(f"{name}: {row['params']} {row['acc']} {row['p50']}", flush=True)
    return row


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _shrink(d: dict, new: str = "pruned") -> str:
    return f"{d['unpruned']:,} -> {d[new]:,} ({d[new] / d['unpruned']:.2f}x)"


def _ratio(p50: dict, new: str = "pruned") -> str:
    return f"{p50[new] / p50['unpruned']:.2f} ({p50['unpruned']:.3f} -> {p50[new]:.3f} ms)"


def table_rows(rows: list[dict]) -> list[str]:
    lines = [
        "| model | params before -> after | MACs before -> after | test acc trained / "
        "pruned / fine-tuned | p50 pruned/unpruned, batch 1 | batch 32 |",
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
        f"{args.finetune} epochs of fine-tuning (AdamW 3e-3, best val epoch kept). Nets other than "
        f"the shipped digits CNN trained here for {args.epochs} epochs (seed 0). Accuracy on the "
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
    body += distill_rows(rows) + ["", "## onnxruntime without its NCHWc layout", ""]
    body += [
        "The tables above use onnxruntime's default optimization level (ORT_ENABLE_ALL), which "
        "adds the NCHWc layout transform (convolutions on blocks of channels); the same files "
        "at ORT_ENABLE_EXTENDED (no layout transform), timed in the same interleaved run:",
        "",
    ]
    path = RESULTS / "pruning.md"
    path.write_text("\n".join(head + body + layout_rows(rows)) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (zoo nets)")
    parser.add_argument("--finetune", type=int, default=10, help="fine-tuning epochs")
    parser.add_argument("--distill", type=int, default=30, help="max distillation epochs")
    parser.add_argument("--runs", type=int, default=2000, help="timed calls at batch 1")
    args = parser.parse_args()
    start = time.perf_counter()
    data = load_digits()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_model(name, f, w, data, args, Path(tmp)) for name, (f, w) in MODELS.items()]
    print(write_report(rows, args, time.perf_counter() - start))


if __name__ == "__main__":
    main()
