"""Structured pruning of CNNs on digits: parameters, FLOPs, accuracy and onnxruntime latency.

    python benchmarks/pruning.py [--epochs 20] [--finetune 20] [--recovery distill] [--distill 30]
        [--runs 2000]

For each CNN (the shipped digits CNN, and ResNet-, MobileNetV3-, concatenation- and
ResNeXt-style (grouped convs, GroupNorm) nets trained here on the digits train split, seed 0):
``prune: {method: structured, amount: 0.5}`` then recovery (fine-tuning, or distillation from
the unpruned model); parameters and MACs (Torch-Pruning's counter) before and after; test
accuracy as trained, right after pruning and after recovery; onnxruntime p50 at batch 1 and 32
on one thread, the unpruned, pruned (round_to 8 and round_to auto: onnxruntime's NCHWc block)
and distilled models interleaved in one run (so the ratios hold on a shared machine);
``distill: {width: 0.5}``: a student derived from the teacher by the same channel groups,
trained by knowledge distillation (target: <= 1/3 of the parameters at >= 97 % of the
teacher's accuracy); and ``target: {macs: 0.4}`` / ``{latency: 0.75}``: the amount searched.
Writes benchmarks/results/pruning.md.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import torch
from bench_helpers import ort_run, ort_session, time_interleaved
from pruning_report import write_report

from edgecompress.compressors.distill import DistillConfig, distill
from edgecompress.compressors.prune import PruneConfig, prune
from edgecompress.compressors.prune_targets import count_macs_params
from edgecompress.context import RunContext
from edgecompress.data import load_digits
from edgecompress.errors import CompressorError
from edgecompress.exporters.onnx.export import export_module
from edgecompress.loaders import load_factory
from edgecompress.measure.latency import summarize_ms
from edgecompress.model import TaskSpec

LEVELS = ("all", "extended")  # onnxruntime graph optimization levels timed
MODELS = {  # name -> (factory, shipped weights or None: trained here, factory args)
    "digits CNN (plain)": (
        "edgecompress.zoo:digits_cnn",
        "package://edgecompress.zoo/digits_cnn.pt",
        {},
    ),
    "ResNet-style": ("edgecompress.zoo:digits_resnet", None, {}),
    "MobileNetV3-style": ("edgecompress.zoo:digits_mobilenet", None, {}),
    "concat (Inception/DenseNet-style)": ("edgecompress.zoo:digits_concat", None, {}),
    "concat, width 32": ("edgecompress.zoo:digits_concat", None, {"width": 32}),
    "ResNeXt-style (groups 4, GroupNorm)": ("edgecompress.zoo:digits_resnext", None, {}),
}


def trained_bundle(factory: str, weights: str | None, args: dict, data, epochs: int):
    from edgecompress.zoo.train import train_classifier

    bundle = load_factory(factory, weights, TaskSpec(), factory_args=args)
    if weights is None:
        train_classifier(bundle.module, data.train, epochs=epochs)
    return bundle


def macs(bundle) -> int:
    return count_macs_params(bundle.module, [torch.zeros(1, 1, 8, 8)])[0]


def reorders(path: Path) -> int:
    """NCHWc layout changes (ReorderInput/Output) in onnxruntime's optimized graph (level all)."""
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(path.with_suffix(".opt.onnx"))
    options.log_severity_level = 3  # (its warning that the file is tied to this CPU)
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    graph = onnx.load(options.optimized_model_filepath).graph
    return sum(n.op_type.startswith("Reorder") for n in graph.node)


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
    out["reorders"] = {name: reorders(folder / f"{name}.onnx") for name in bundles}
    for batch, n in ((1, runs), (32, max(100, runs // 8))):
        feeds = [{"image": x[i : i + batch]} for i in range(0, 64 * batch, batch)]
        times = time_interleaved(runners, [f for f in feeds if len(f["image"]) == batch], n)
        for (level, name), t in times.items():
            out[level].setdefault(batch, {})[name] = summarize_ms(t)["p50"]
    return out


def target_rows(teacher, ctx) -> list[dict]:
    """The amount searched for a MACs target (round_to 8) and a latency target (round_to auto)."""
    out = []
    for target, round_to in (({"macs": 0.4}, 8), ({"latency": 0.75}, "auto")):
        config = PruneConfig(method="structured", target=target, round_to=round_to)
        try:
            _, stats = prune(teacher, config, ctx)
        except CompressorError as exc:
            stats = {"error": re.search(r"removing .* keeps [0-9.]+", str(exc)).group(0)}
        out.append({"target": target, "round_to": round_to, **stats})
    return out


def one_model(name: str, spec: tuple, data, args, folder: Path) -> dict:
    start = time.perf_counter()
    teacher = trained_bundle(*spec, data, args.epochs)
    ctx = RunContext(data, folder)
    ctx.set_baseline(teacher)
    config = PruneConfig(method="structured", amount=0.5, finetune_epochs=args.finetune,
                         lr=3e-3, batch_size=64, recovery=args.recovery)  # fmt: skip
    pruned, stats = prune(teacher, config, ctx)
    nchwc, nstats = prune(teacher, config.model_copy(update={"round_to": "auto"}), ctx)
    student, dstats = distill(
        teacher, DistillConfig(width=0.5, epochs=args.distill, patience=8), ctx
    )
    bundles = {"unpruned": teacher, "pruned": pruned, "nchwc": nchwc, "student": student}
    speed = latency(bundles, data, folder, args.runs)
    row = {
        "name": name,
        "params": {k: b.param_count() for k, b in bundles.items()},
        "macs": {k: macs(b) for k, b in bundles.items()},
        "acc": {"trained": stats["metric_before"], "pruned": stats["metric_after_prune"],
                "finetuned": stats["metric_after"], "student": dstats["metric_after"],
                "nchwc": nstats["metric_after"]},
        "p50": speed["all"],
        "p50_extended": speed["extended"],
        "reorders": speed["reorders"],
        "targets": target_rows(teacher, ctx),
        "seconds": time.perf_counter() - start,
    }  # fmt: skip
    print(f"{name}: {row['params']} {row['acc']} {row['p50']}", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="training epochs (zoo nets)")
    parser.add_argument("--finetune", type=int, default=20, help="recovery epochs")
    parser.add_argument("--recovery", default="distill", choices=["finetune", "distill"])
    parser.add_argument("--distill", type=int, default=30, help="max distillation epochs")
    parser.add_argument("--runs", type=int, default=2000, help="timed calls at batch 1")
    args = parser.parse_args()
    torch.set_num_threads(1)  # training on one thread: the same accuracies on any core count
    start = time.perf_counter()
    data = load_digits()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [one_model(name, spec, data, args, Path(tmp)) for name, spec in MODELS.items()]
    print(write_report(rows, args, time.perf_counter() - start))


if __name__ == "__main__":
    main()
