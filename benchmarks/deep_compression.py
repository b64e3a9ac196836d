"""Deep Compression on the 8x8 digits: LeNet-300-100 (64-300-100-10) and a LeNet-5-style CNN,
iterative prune -> cluster (k-means weight sharing, biases too, float16 centroids fine-tuned)
-> entropy-coded storage, sizes at each stage beside Han et al. (ICLR 2016), and the coders
compared side by side. The val split picks the sparsity; the test split is only reported.

    PYTHONPATH=. python benchmarks/deep_compression.py --seed 0 [--models lenet300 lenet5]
        [--out benchmarks/results/deep-compression.json] (results go under its "digits" key)
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
# Iterative pruning as in the paper: global magnitude pruning in rounds up to the final
# sparsity, each round retrained; the sparsest round whose val drop fits the budget is kept.
SCHEDULES = {
    "lenet300": (0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98),
    "lenet5": (0.6, 0.8, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98),
}
CLUSTER = ClusterConfig(conv_bits=8, linear_bits=5, bias_bits=5, float16_codebooks=True,
                        finetune_epochs=20, lr=3e-4, batch_size=64)  # fmt: skip
VAL_BUDGET = 0.003  # accuracy drop allowed on the val split (the test split picks nothing)


def test_accuracy(bundle, split) -> float:
    out = predict(TorchRunner(bundle.module.eval(), bundle.io).run, bundle, split)
    return float(score(bundle.task.kind, out, split)["value"])


def export(module, path: Path) -> Path:
    names = {"input_names": ["image"], "output_names": ["logits"]}
    x = torch.zeros(1, 1, 8, 8)
    axes = {"image": {0: "batch"}}
    torch.onnx.export(module.eval(), (x,), str(path), **names, dynamic_axes=axes, dynamo=False)
    return path


def iterative_prune(bundle, ctx, schedule, args) -> list[tuple[float, object, float]]:
    """(sparsity, pruned bundle, val accuracy) of each round; stops once a round loses more
    than ``args.give_up`` on val (later rounds would only lose more)."""
    rounds, current = [], bundle
    for amount in schedule:
        config = PruneConfig(amount=amount, scope="global", finetune_epochs=args.prune_epochs,
                             lr=args.prune_lr, batch_size=64)  # fmt: skip
        current, stats = prune(current, config, ctx)
        rounds.append((amount, current, float(stats["metric_after"])))
        print(f"  prune {amount}: val {stats['metric_after']:.4f}", flush=True)
        if ctx.baseline["value"] - rounds[-1][2] > args.give_up:
            break
    return rounds


def run_model(key: str, data, work: Path, args) -> dict:
    factory = f"benchmarks.deep_compression:{'LeNet300' if key == 'lenet300' else 'LeNet5'}"
    torch.manual_seed(args.seed)  # the initial weights
    bundle = load_factory(factory, None, TaskSpec())
    train_classifier(bundle.module, data.train, epochs=args.train_epochs, lr=3e-3, seed=args.seed)
    ctx = RunContext(data, work, seed=args.seed)
    base = ctx.set_baseline(bundle)["value"]
    update = {"linear_bits": args.linear_bits, "bias_bits": args.bias_bits or None,
              "finetune_epochs": args.cluster_epochs}  # fmt: skip
    config = CLUSTER.model_copy(update=update)
    t0 = time.perf_counter()
    rounds = iterative_prune(bundle, ctx, args.schedule or SCHEDULES[key], args)
    for amount, pruned, _ in reversed(rounds):  # sparsest first
        clustered, cstats = cluster(pruned, config, ctx)
        val = float(cstats["metric_after"])
        print(f"  cluster at {amount}: val {val:.4f} (original {base:.4f})", flush=True)
        if base - val <= VAL_BUDGET or amount == rounds[0][0]:
            break
    seconds = time.perf_counter() - t0
    torch.save(clustered.module.state_dict(), work / f"{key}-s{args.seed}-clustered.pt")
    cstats["bias_bits"] = config.bias_bits
    sizes = stage_sizes(bundle, pruned, clustered, cstats, work / key)
    accs = {n: test_accuracy(b, data.test) for n, b in
            (("original", bundle), ("pruned", pruned), ("clustered", clustered))}  # fmt: skip
    vals = {"original": base, "clustered": val}
    return {"model": key, "seed": args.seed, "prune_amount": amount, "scope": "global", "schedule":
            [r[0] for r in rounds], "val_per_round": [r[2] for r in rounds],
            "prune_epochs": args.prune_epochs, "bits": cstats["bits"],
            "bias_bits": config.bias_bits, "float16_codebooks": config.float16_codebooks,
            "cluster_epochs": config.finetune_epochs, "train_epochs": args.train_epochs,
            "sizes": sizes, "test_accuracy": accs, "val_accuracy": vals,
            "test_samples": len(data.test), "seconds": round(seconds, 1),
            "coders": compare_coders(work / key / "clustered.onnx")}  # fmt: skip


def stage_sizes(bundle, pruned, clustered, cstats, folder: Path) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    params = sum(p.numel() for p in bundle.module.parameters())
    nonzero = sum(int((p != 0).sum()) for p in pruned.module.parameters())
    path = export(clustered.module, folder / "clustered.onnx")
    original = export(bundle.module, folder / "original.onnx")
    enc = encode.encode_onnx(path, min_elements=1)  # every parameter in the coded file
    return {
        "float32_bytes": params * 4,
        "onnx_bytes": original.stat().st_size,
        "deflate_onnx_bytes": len(zlib.compress(original.read_bytes(), 9)),
        # pruned, stored as CSR-like (float32 value + 8-bit relative index per non-zero)
        "pruned_bytes": nonzero * 5,
        "clustered_bytes": paper_count(clustered.module, cstats["bits"], cstats["bias_bits"]),
        "coded_weights_bytes": len(enc.weights),
        "skeleton_bytes": len(enc.skeleton),
        "deflate_clustered_onnx_bytes": len(zlib.compress(path.read_bytes(), 9)),
    }


def paper_count(module, bits: dict[str, int], bias_bits: int | None, gap_bits: int = 5) -> int:
    """Bytes before entropy coding, as the paper counts them: per Conv/Linear weight an index
    of ``bits`` per non-zero (plus a ``gap_bits`` relative position where the layer has
    zeros) and a float16 codebook; biases as indices of ``bias_bits`` plus a float16
    codebook (float16 values if they have fewer elements than the codebook)."""
    total = 0
    for name, layer in module.named_modules():
        if name not in bits:
            continue
        w, b = layer.weight.detach(), bits[name]
        nonzero = int((w != 0).sum())
        total += nonzero * (b + (gap_bits if nonzero < w.numel() else 0)) + 16 * 2**b
        if layer.bias is not None:
            n, k = layer.bias.numel(), 2 ** (bias_bits or 16)
            total += 16 * n if n <= k else n * bias_bits + 16 * k
    return total // 8


def compare_coders(path: Path) -> dict:
    """Bytes per stream kind for every coder (the same layouts the writer picked)."""
    import onnx

    _, tensors = encode.split_model(onnx.load(str(path)))
    totals: dict[str, dict[str, int]] = {}
    for name, array in tensors.items():
        t = fmt.code_tensor(name, array)
        for key, s in t.streams.items():
            raw = codecs.decode_check(s.codec, s.coded, s.raw_length)
            kind = f"{t.layout}:{key}"
            row = totals.setdefault(kind, {})
            for codec in list(codecs.STDLIB_CODECS) + [codecs.Codec.zstd]:
                row[codec.value] = row.get(codec.value, 0) + len(codecs.compress(codec, raw))
            sym = np.frombuffer(raw, np.uint8)
            row["huffman-static"] = row.get("huffman-static", 0) + codecs.huffman_size(sym)
            row["lzw"] = row.get("lzw", 0) + codecs.lzw_size(raw)
            row["ans"] = row.get("ans", 0) + (codecs.ans_size(sym) or 0)
            row["chosen"] = row.get("chosen", 0) + len(s.coded)
    return totals


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
            f"| {name}, seed {r.get('seed', 0)}: {100 * r['prune_amount']:.0f} % pruned "
            f"| {kb(s['float32_bytes'])} "
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="benchmarks/results/deep-compression.json")
    parser.add_argument("--models", nargs="*", default=["lenet300", "lenet5"])
    parser.add_argument(
        "--schedule",
        type=float,
        nargs="*",
        default=None,
        help="sparsity of each pruning round (default per model)",
    )
    parser.add_argument("--prune-epochs", type=int, default=30, help="retraining per round")
    parser.add_argument("--prune-lr", type=float, default=2e-3)
    parser.add_argument("--train-epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--linear-bits", type=int, default=5)
    parser.add_argument("--bias-bits", type=int, default=5, help="0: biases not shared")
    parser.add_argument("--cluster-epochs", type=int, default=20)
    parser.add_argument(
        "--give-up",
        type=float,
        default=0.03,
        help="stop pruning once a round loses this much val accuracy",
    )
    parser.add_argument("--work", default=None, help="keep the models here (default: a temp dir)")
    args = parser.parse_args()
    data = load_digits()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        results = []
        for key in args.models:
            results.append(run_model(key, data, work, args))
            write_results(Path(args.out), results)
            print(json.dumps({k: v for k, v in results[-1].items() if k != "coders"}), flush=True)
        print(render(results))


def write_results(out: Path, results: list[dict]) -> None:
    """Store ``results`` under "digits" in ``out``, replacing earlier runs of the same model and
    seed (other runs and other keys, e.g. MiniLM's, kept)."""
    doc = json.loads(out.read_text()) if out.exists() else {}
    new = {(r["model"], r.get("seed", 0)) for r in results}
    kept = [r for r in doc.get("digits", []) if (r["model"], r.get("seed", 0)) not in new]
    order = lambda r: (r["model"] != "lenet300", r.get("seed", 0))  # noqa: E731
    doc["digits"] = sorted(kept + results, key=order)
    out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
