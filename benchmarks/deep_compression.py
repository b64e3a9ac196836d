"""Deep Compression on the 8x8 digits: LeNet-300-100 (64-300-100-10) and a LeNet-5-style CNN,
prune -> cluster (k-means weight sharing, centroids fine-tuned) -> entropy-coded storage, sizes
at each stage beside Han et al. (ICLR 2016), and the coders compared side by side.

    python benchmarks/deep_compression.py [--out benchmarks/results/deep-compression.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecompress.compressors.cluster import ClusterConfig, cluster
from edgecompress.compressors.prune import PruneConfig, prune
from edgecompress.context import RunContext
from edgecompress.data import load_digits
from edgecompress.loaders import load_factory
from edgecompress.metrics import predict, score
from edgecompress.model import TaskSpec
from edgecompress.runtimes import TorchRunner
from edgecompress.storage import codecs, encode
from edgecompress.storage import format as fmt
from edgecompress.zoo.specs import DIGITS_IO
from edgecompress.zoo.train import train_classifier


class LeNet300(nn.Module):
    """LeNet-300-100 on 8x8 digits: 64-300-100-10."""

    io_spec = DIGITS_IO

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 300), nn.ReLU(),
                                 nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, 10))  # fmt: skip

    def forward(self, x):
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5 style on 8x8 digits: conv 5x5 (20) - pool - conv 3x3 (50) - fc 500 - fc 10."""

    io_spec = DIGITS_IO

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 20, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(20, 50, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(200, 500), nn.ReLU(),
                                        nn.Linear(500, 10))  # fmt: skip

    def forward(self, x):
        return self.classifier(self.features(x))


PAPER = {
    "lenet300": ("LeNet-300-100", 1070, 27, 40, 1.64, 1.58),
    "lenet5": ("LeNet-5", 1720, 44, 39, 0.80, 0.74),
}
RECIPES = {
    "lenet300": (0.92, ClusterConfig(conv_bits=8, linear_bits=5)),
    "lenet5": (0.90, ClusterConfig(conv_bits=8, linear_bits=5)),
}


def test_accuracy(bundle, split) -> float:
    out = predict(TorchRunner(bundle.module.eval(), bundle.io).run, bundle, split)
    return float(score(bundle.task.kind, out, split)["value"])


def export(module, path: Path) -> Path:
    names = {"input_names": ["image"], "output_names": ["logits"]}
    x = torch.zeros(1, 1, 8, 8)
    axes = {"image": {0: "batch"}}
    torch.onnx.export(module.eval(), (x,), str(path), **names, dynamic_axes=axes, dynamo=False)
    return path


def run_model(key: str, data, work: Path, args) -> dict:
    factory = f"benchmarks.deep_compression:{'LeNet300' if key == 'lenet300' else 'LeNet5'}"
    bundle = load_factory(factory, None, TaskSpec())
    train_classifier(bundle.module, data.train, epochs=60, lr=3e-3)
    ctx = RunContext(data, work)
    ctx.set_baseline(bundle)
    amount, config = RECIPES[key]
    amount = args.amount or amount
    update = {"finetune_epochs": 8, "lr": 3e-4, "batch_size": 64}
    if args.linear_bits:
        update["linear_bits"] = args.linear_bits
    config = config.model_copy(update=update)
    t0 = time.perf_counter()
    prune_config = PruneConfig(amount=amount, scope=args.scope, finetune_epochs=args.prune_epochs,
                               lr=2e-3, batch_size=64)  # fmt: skip
    pruned, _ = prune(bundle, prune_config, ctx)
    clustered, cstats = cluster(pruned, config, ctx)
    seconds = time.perf_counter() - t0
    print(key, "compressed in", round(seconds), "s", cstats["bits"], flush=True)
    sizes = stage_sizes(bundle, pruned, clustered, cstats, work / key)
    accs = {n: test_accuracy(b, data.test) for n, b in
            (("original", bundle), ("pruned", pruned), ("clustered", clustered))}  # fmt: skip
    return {"model": key, "prune_amount": amount, "scope": args.scope,
            "prune_epochs": args.prune_epochs, "bits": cstats["bits"], "sizes": sizes,
            "test_accuracy": accs, "test_samples": len(data.test), "seconds": round(seconds, 1),
            "coders": compare_coders(work / key / "clustered.onnx")}  # fmt: skip


def stage_sizes(bundle, pruned, clustered, cstats, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    params = sum(p.numel() for p in bundle.module.parameters())
    nonzero = sum(int((p != 0).sum()) for p in pruned.module.parameters())
    path = export(clustered.module, folder / "clustered.onnx")
    original = export(bundle.module, folder / "original.onnx")
    enc = encode.encode_onnx(path)
    return {
        "float32_bytes": params * 4,
        "onnx_bytes": original.stat().st_size,
        "deflate_onnx_bytes": len(zlib.compress(original.read_bytes(), 9)),
        # pruned, stored as CSR-like (float32 value + 8-bit relative index per non-zero)
        "pruned_bytes": nonzero * 5,
        "clustered_bytes": cstats["index_bytes"] + cstats["codebook_bytes"] + cstats["other_bytes"],
        "coded_weights_bytes": len(enc.weights),
        "skeleton_bytes": len(enc.skeleton),
        "deflate_clustered_onnx_bytes": len(zlib.compress(path.read_bytes(), 9)),
    }


def compare_coders(path: Path) -> dict:
    """Bytes per stream kind for every coder (the same layouts the writer picked)."""
    import onnx

    _, tensors = encode.split_model(onnx.load(str(path)))
    totals: dict[str, dict[str, int]] = {}
    for name, array in tensors.items():
        t = fmt.code_tensor(name, array)
        for key, s in t.streams.items():
            raw = codecs.decoder._decompress(s.codec.value, s.coded, s.extra)
            kind = f"{t.layout}:{key}"
            row = totals.setdefault(kind, {})
            for codec in list(codecs.STDLIB_CODECS) + [codecs.Codec.zstd]:
                row[codec.value] = row.get(codec.value, 0) + len(codecs.compress(codec, raw)[0])
            sym = np.frombuffer(raw, np.uint8)
            row["huffman-static"] = row.get("huffman-static", 0) + codecs.huffman_size(sym)
            row["lzw"] = row.get("lzw", 0) + codecs.lzw_size(raw)
            row["ans"] = row.get("ans", 0) + (codecs.ans_size(sym) or 0)
            row["chosen"] = row.get("chosen", 0) + len(s.coded)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/deep-compression.json")
    parser.add_argument("--models", nargs="*", default=["lenet300", "lenet5"])
    parser.add_argument("--amount", type=float, default=None, help="sparsity (default per model)")
    parser.add_argument("--scope", default="global", choices=["layer", "global"])
    parser.add_argument("--prune-epochs", type=int, default=30)
    parser.add_argument("--linear-bits", type=int, default=None)
    args = parser.parse_args()
    data = load_digits()
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for key in args.models:
            results.append(run_model(key, data, Path(tmp), args))
            Path(args.out).write_text(json.dumps(results, indent=1))
            print(json.dumps(results[-1], indent=1), flush=True)


if __name__ == "__main__":
    main()


def render(results: list[dict]) -> str:
    """Markdown tables: sizes per stage beside the paper, then the coders per stream kind."""
    lines = [
        "| model | float32 | zip DEFLATE of ONNX | pruned (CSR) | clustered | coded (.ecw) "
        "| ratio | test acc. before -> after | paper: ratio, error before -> after |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        s, a = r["sizes"], r["test_accuracy"]
        name, _, _, ratio, e0, e1 = PAPER[r["model"]]
        kb = lambda n: f"{n / 1024:.1f} KiB"  # noqa: E731
        lines.append(
            f"| {name} (digits 8x8) | {kb(s['float32_bytes'])} "
            f"| {kb(s['deflate_onnx_bytes'])} "
            f"| {kb(s['pruned_bytes'])} | {kb(s['clustered_bytes'])} "
            f"| {kb(s['coded_weights_bytes'])} "
            f"| {s['float32_bytes'] / s['coded_weights_bytes']:.1f}x "
            f"| {100 * a['original']:.2f} % -> {100 * a['clustered']:.2f} % "
            f"| {ratio}x, {e0} % -> {e1} % |"
        )
    for r in results:
        coders = list(next(iter(r["coders"].values())))
        title = f"{PAPER[r['model']][0]}: bytes per stream kind and coder"
        header = "| stream | " + " | ".join(coders) + " |"
        lines += ["", title, "", header, "|---" * (len(coders) + 1) + "|"]
        for kind, row in r["coders"].items():
            lines.append(f"| {kind} | " + " | ".join(str(row[c]) for c in coders) + " |")
    return "\n".join(lines)
