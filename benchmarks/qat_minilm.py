"""Quantization-aware distillation of all-MiniLM-L6-v2 onto the int8-token exporter's ~4-bit
grids (issue 16, must-show 2): does fine-tuning with fake-quantized weights (straight-through
estimator) keep mean cosine >= 0.999 to the float model where round-to-nearest does not?

    python benchmarks/qat_minilm.py --weight-step 12 --embedding-step 10 --steps 300 --lr 5e-5
    python benchmarks/qat_minilm.py --weight-step 2 --embedding-step 5 --steps 0   # today's grid

Grids (as the int8-token exporter stores them): every Linear weight row (output channel) on
``s * S * clamp(round(W / (s * S)), -(127 // S), 127 // S)`` with ``s = max|W[o, :]| / 127``
recomputed from the latent float weights every step; every word-embedding row the same way with
step ``E_S``; position / token-type embeddings, LayerNorms and biases stay float. Student = a copy
of the float model with those weights fake-quantized (STE); teacher = the float model. Loss:
1 - cosine of the pooled embeddings + ``--mse`` x MSE of the last hidden states (padding masked),
on the ``sentences`` train split in padded batches plus augmented copies (word dropout, crops,
concatenations). The checkpoint with the best validation mean cosine is kept (steps chosen on
val); test is reported for it only. Quality: batch 1, each sentence at its own length, mean /
min cosine and top-1 neighbour agreement to the float model's embeddings. Size: empirical entropy
of each quantized tensor's integer levels + 16 bits per scale, the rest at 32 bits.
Prints one markdown row per run (see benchmarks/results/deep-compression-qat.md).
"""

from __future__ import annotations

import argparse
import copy
import math
import random
import time

import bench_helpers as sc
import numpy as np

from edgecompress.data import load_sentences
from edgecompress.hf.text import mean_pool
from edgecompress.model import tokenize

MAX_LENGTH = 128


def grid(weight, step: int):
    """(integer levels, per-row scale) of ``weight`` [rows, cols] on the int8 multiples of step."""
    import torch

    w = weight.detach()
    scale = w.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
    top = 127 // step
    return torch.clamp(torch.round(w / (scale * step)), -top, top), scale


def fake_quant_module(step: int):
    from torch import nn

    class FakeQuant(nn.Module):
        """Forward: the weight on its grid; backward: identity (straight-through)."""

        def forward(self, weight):
            levels, scale = grid(weight, step)
            return weight + (levels * scale * step - weight).detach()

    return FakeQuant()


def quantized_weights(model, weight_step: int, embedding_step: int) -> list[tuple]:
    """(module, step) for every Linear and the word-embedding table of the encoder."""
    from torch import nn

    pairs = [(m, weight_step) for m in model.modules() if isinstance(m, nn.Linear)]
    return pairs + [(model.model.embeddings.word_embeddings, embedding_step)]


def make_student(teacher, weight_step: int, embedding_step: int):
    from torch.nn.utils import parametrize

    student = copy.deepcopy(teacher)
    for module, step in quantized_weights(student, weight_step, embedding_step):
        parametrize.register_parametrization(module, "weight", fake_quant_module(step))
    return student


def entropy_bits(levels) -> float:
    import torch

    _, counts = torch.unique(levels, return_counts=True)
    p = counts.double() / counts.sum()
    return float(-(p * torch.log2(p)).sum()) * levels.numel()


def size_estimate(student, weight_step: int, embedding_step: int) -> dict:
    """Coded size in MB: entropy of the integer levels + 16 bits per scale, rest at 32 bits."""
    pairs = quantized_weights(student, weight_step, embedding_step)
    bits, counts = {"linear": 0.0, "embedding": 0.0}, {"linear": 0, "embedding": 0}
    for i, (module, step) in enumerate(pairs):
        latent = module.parametrizations.weight.original
        levels, scale = grid(latent, step)
        part = "embedding" if i == len(pairs) - 1 else "linear"
        bits[part] += entropy_bits(levels) + 16 * scale.numel()
        counts[part] += latent.numel()
    rest = sum(p.numel() for p in student.parameters()) - sum(counts.values())
    return {
        "mb": (bits["linear"] + bits["embedding"] + 32 * rest) / 8e6,
        "linear_bits": bits["linear"] / counts["linear"],
        "embedding_bits": bits["embedding"] / counts["embedding"],
        "rest_mb": 4 * rest / 1e6,
    }


def embed_single(module, bundle, texts: list[str]) -> np.ndarray:
    """Batch 1, own length (the benchmarks' protocol), weights quantized once (cached)."""
    import torch
    from torch.nn.utils import parametrize

    with parametrize.cached():
        return sc.embed_all(
            sc.torch_run(module, torch.get_num_threads()), sc.single_feeds(bundle, texts)
        )


def embed_batched(module, bundle, texts: list[str], batch: int = 64) -> np.ndarray:
    """Padded batches (same embeddings up to float rounding; for choosing steps quickly)."""
    import torch
    from torch.nn.utils import parametrize

    rows = []
    with torch.inference_mode(), parametrize.cached():
        for i in range(0, len(texts), batch):
            feed = tensors(bundle, texts[i : i + batch])
            rows.append(module(**feed).numpy())
    return np.concatenate(rows)


def tensors(bundle, texts: list[str]) -> dict:
    import torch

    feed = tokenize(bundle.tokenizer_dir, texts, bundle.io, MAX_LENGTH)
    return {k: torch.from_numpy(v) for k, v in feed.items()}


def augment(texts: list[str], rng: random.Random) -> list[str]:
    """Cheap new inputs from train sentences: word dropout, a random crop, or a concatenation."""
    out = []
    for text in texts:
        words, kind = text.split(), rng.randrange(3)
        if kind == 0:
            kept = [w for w in words if rng.random() > 0.2]
            out.append(" ".join(kept or words))
        elif kind == 1:
            n = max(1, int(len(words) * rng.uniform(0.3, 0.8)))
            start = rng.randrange(len(words) - n + 1)
            out.append(" ".join(words[start : start + n]))
        else:
            out.append(text + " " + rng.choice(texts))
    return out


def hidden_and_pooled(module, feed):
    hidden = module.model(**feed).last_hidden_state
    return hidden, mean_pool(hidden, feed["attention_mask"])


def distill_loss(student, teacher, feed, mse_weight: float):
    import torch

    with torch.no_grad():
        t_hidden, t_pooled = hidden_and_pooled(teacher, feed)
    s_hidden, s_pooled = hidden_and_pooled(student, feed)
    cos_loss = 1 - (s_pooled * t_pooled).sum(1).mean()
    mask = feed["attention_mask"].unsqueeze(-1).to(s_hidden.dtype)
    mse = (((s_hidden - t_hidden) ** 2) * mask).sum() / (mask.sum() * s_hidden.shape[-1])
    return cos_loss + mse_weight * mse


def latent_state(student) -> dict:
    return {k: v.detach().clone() for k, v in student.state_dict().items()}


def train(student, teacher, bundle, texts, val_texts, val_ref, args) -> dict:
    """Adam on the latent weights; returns the best val point (the student is left at it)."""
    import torch

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=args.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * 0.5 * (1 + math.cos(math.pi * s / args.steps))
    )
    best = {"step": 0, "val_cos": val_cos(student, bundle, val_texts, val_ref)}
    best_state, start, curve = latent_state(student), time.perf_counter(), []
    for step in range(1, args.steps + 1):
        batch = rng.sample(texts, args.batch // 2)
        feed = tensors(bundle, batch + (augment(batch, rng) if args.augment else batch))
        loss = distill_loss(student, teacher, feed, args.mse)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % args.eval_every == 0 or step == args.steps:
            cos = val_cos(student, bundle, val_texts, val_ref)
            curve.append(f"{step}:{cos:.5f}")
            print(f"  step {step} loss {loss.item():.5f} val {cos:.5f} "
                  f"{time.perf_counter() - start:.0f}s", flush=True)  # fmt: skip
            if cos > best["val_cos"]:
                best, best_state = {"step": step, "val_cos": cos}, latent_state(student)
    student.load_state_dict(best_state)
    student.eval()
    return {**best, "seconds": time.perf_counter() - start, "curve": " ".join(curve)}


def val_cos(student, bundle, texts, ref) -> float:
    student.eval()
    return sc.embedding_quality(ref, embed_batched(student, bundle, texts))["mean_cos"]


def unseen_tokens(bundle, train_texts: list[str], test_texts: list[str]) -> str:
    ids = lambda texts: tokenize(bundle.tokenizer_dir, texts, bundle.io, MAX_LENGTH)  # noqa: E731
    train = ids(train_texts)
    seen = set(train["input_ids"][train["attention_mask"] == 1].tolist())
    test = ids(test_texts)
    test_ids = test["input_ids"][test["attention_mask"] == 1]
    unseen = [t for t in test_ids.tolist() if t not in seen]
    return (
        f"{len(set(unseen))} of {len(set(test_ids.tolist()))} distinct test token ids "
        f"({len(unseen)} of {len(test_ids)} test token occurrences) never occur in train"
    )


def cells(quality: dict) -> str:
    return f"{quality['mean_cos']:.5f} / {quality['min_cos']:.5f}, {quality['agreement']:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weight-step", type=int, default=12)
    parser.add_argument("--embedding-step", type=int, default=10)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch", type=int, default=32, help="train sentences + augmented")
    parser.add_argument("--mse", type=float, default=1.0, help="weight of the hidden-state MSE")
    parser.add_argument("--no-augment", dest="augment", action="store_false")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="64 val / 64 test sentences")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    bundle = sc.load_text_bundle()
    teacher = bundle.module.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    splits = load_sentences()
    train_texts, val_texts, test_texts = (
        splits.train.texts, splits.val.texts, splits.test.texts
    )  # fmt: skip
    if args.quick:
        val_texts, test_texts = val_texts[:64], test_texts[:64]
    print(unseen_tokens(bundle, train_texts, test_texts), flush=True)
    ref = {"val": embed_single(teacher, bundle, val_texts)}
    ref["test"] = embed_single(teacher, bundle, test_texts)
    student = make_student(teacher, args.weight_step, args.embedding_step)
    for p in student.parameters():
        p.requires_grad_(True)
    size = size_estimate(student, args.weight_step, args.embedding_step)
    before = {k: sc.embedding_quality(ref[k], embed_single(student, bundle, t))
              for k, t in (("val", val_texts), ("test", test_texts))}  # fmt: skip
    print(f"  size {size}", flush=True)
    print(f"  before: val {cells(before['val'])} | test {cells(before['test'])}", flush=True)
    run = {"step": 0, "seconds": 0.0, "curve": "-"}
    after = before
    if args.steps:
        val_ref = embed_batched(teacher, bundle, val_texts)
        run = train(student, teacher, bundle, train_texts, val_texts, val_ref, args)
        after = {k: sc.embedding_quality(ref[k], embed_single(student, bundle, t))
                 for k, t in (("val", val_texts), ("test", test_texts))}  # fmt: skip
        size = size_estimate(student, args.weight_step, args.embedding_step)
    print(f"  val curve {run['curve']}; {run['seconds']:.0f} s training", flush=True)
    print(
        f"| S={args.weight_step}, E_S={args.embedding_step} | {size['mb']:.2f} "
        f"({size['linear_bits']:.2f} / {size['embedding_bits']:.2f} b) | "
        f"{cells(before['val'])} | {cells(before['test'])} | "
        f"{args.steps} x {args.batch}, lr {args.lr:g}, mse {args.mse:g}"
        f"{'' if args.augment else ', no aug.'} -> best step {run['step']} | "
        f"{cells(after['val'])} | {cells(after['test'])} |"
    )


if __name__ == "__main__":
    main()
