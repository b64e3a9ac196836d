"""all-MiniLM-L6-v2 on CPU: edgecompress against the usual ways to run / quantize it.

Usage: ``python benchmarks/peers.py [--runs 100] [--threads 1,2] [--quick] [--model REF]``.
Variants, on the same inputs (batch 1 padded to length 128, and batch 1 at each test
sentence's own length), at each thread count, in one run: (a) torch fp32 eager, (b)
onnxruntime fp32, (c) Optimum ORTQuantizer dynamic int8 for this CPU, (d) onnxruntime
``quantize_dynamic`` defaults, (e) torch dynamic int8, (f) TFLite dynamic range via onnx2tf,
(g) ours as the recipe ships it (int8-token), (h) ours speed-first (dynamic int8), (i) ours
as TFLite (litert-torch, dynamic-range int8; ``--skip c,d,e,f,g,h`` runs it beside a and b
only). Accuracy against the torch fp32 embeddings over every test sentence. Writes
``benchmarks/results/minilm-peers.md`` (``--out``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("USE_TF", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent

import bench_helpers as sc  # noqa: E402
import peers_report  # noqa: E402
import peers_variants as pv  # noqa: E402

INPUT_SETS = ("b1-L128", "b1-real")


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="timed calls per cell")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--quick", action="store_true", help="few runs and sentences (tests)")
    parser.add_argument("--model", default=sc.MINILM_REF, help="HF folder or package:// ref")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/minilm-peers.md")
    parser.add_argument("--work", type=Path, default=None, help="keep built files here")
    parser.add_argument("--skip", default="", help="comma-separated variant keys to skip")
    parser.add_argument("--no-zip", action="store_true", help="skip the Lambda zip of (g)")
    parser.add_argument("--tflite-timeout", type=int, default=600, help="seconds for (f)")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs = min(args.runs, 5)
    args.thread_list = [int(t) for t in args.threads.split(",") if t]
    return args


def inputs(bundle, quick: bool) -> tuple[dict[str, list[dict]], list[dict]]:
    """(timing feeds per input set, accuracy feeds: every test sentence at its own length)."""
    from edgecompress.data import load_sentences

    texts = load_sentences().test.texts
    if quick:
        texts = texts[:40]
    real = sc.single_feeds(bundle, texts)
    timing = {"b1-L128": sc.single_feeds(bundle, texts[:32], pad_to=128), "b1-real": real}
    return timing, real


def measure(variants: list, timing: dict, args) -> None:
    """Fill each built variant's ``times[(input_set, threads)]`` (interleaved, perf_counter)."""
    live = [v for v in variants if v.ok]
    for threads in args.thread_list:
        runs = {v.key: v.runner(threads) for v in live}
        for name, feeds in timing.items():
            print(f"timing {name} at {threads} thread(s) ...", file=sys.stderr, flush=True)
            result = sc.time_interleaved(runs, feeds, args.runs, warmup=3)
            for v in live:
                v.times[(name, threads)] = sc.percentiles(result[v.key])


def main(argv=None) -> int:
    args = parse(argv)
    started = time.time()
    bundle = sc.load_text_bundle(args.model)
    timing, acc_feeds = inputs(bundle, args.quick)
    with pv.workdir(args.work) as work:
        variants = pv.build_all(bundle, work, acc_feeds, args)
        reference = next(v for v in variants if v.key == "a").embed(acc_feeds)
        for v in variants:
            if v.ok:
                v.quality = sc.embedding_quality(reference, v.embed(acc_feeds))
        args.neighbour_gaps = sc.neighbour_gaps(reference)
        measure(variants, timing, args)
        text = peers_report.render(variants, args, bundle, len(acc_feeds), time.time() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
