"""Distil a Hugging Face encoder into fewer layers, on one process or many::

    torchrun --nproc_per_node 2 -m edgecompress.compressors.distill_ddp \\
        --teacher-hf TEACHER_DIR --layers 3 --epochs 1 --out STUDENT_DIR

Under torchrun (WORLD_SIZE > 1) each process trains on its shard of the data through DDP; rank
0 writes the student (``save_pretrained`` + tokenizer.json) and ``distill_stats.json`` to OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from edgecompress.compressors.distill import DistillConfig, distill
from edgecompress.context import RunContext
from edgecompress.data import load_dataset
from edgecompress.loaders import load_hf
from edgecompress.model import TaskKind, TaskSpec


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m edgecompress.compressors.distill_ddp")
    p.add_argument("--teacher-hf", required=True, type=Path, help="teacher transformers folder")
    p.add_argument("--layers", required=True, type=int, help="encoder layers of the student")
    p.add_argument("--out", required=True, type=Path, help="folder for the student")
    p.add_argument("--data", default="sentences", help="dataset: built-in or pkg.module:fn")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--max-val-samples", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict:
    os.environ.setdefault("USE_TF", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    task = TaskSpec(TaskKind.embedding, args.data, "cosine", args.max_length)
    bundle = load_hf(args.teacher_hf, task)
    ctx = RunContext(load_dataset(args.data, seed=args.seed), args.out, seed=args.seed)
    ctx.set_baseline(bundle)
    config = DistillConfig(
        layers=args.layers, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
        max_train_samples=args.max_train_samples, max_val_samples=args.max_val_samples,
        seed=args.seed,
    )  # fmt: skip
    student, stats = distill(bundle, config, ctx)
    print(f"rank {stats['rank']}/{stats['world_size']}: distilled on "
          f"{stats['samples_per_rank']} samples", file=sys.stderr, flush=True)  # fmt: skip
    if stats["rank"] == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        student.module.model.save_pretrained(str(args.out))
        shutil.copy(Path(bundle.tokenizer_dir) / "tokenizer.json", args.out / "tokenizer.json")
        (args.out / "distill_stats.json").write_text(json.dumps(stats, indent=2))
    return stats


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        run(args)
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
