"""Task metrics on a data split, for any runner (torch, onnxruntime, LiteRT).

classification: top-1 accuracy against the labels.
embedding: mean / min cosine of each embedding to the reference model's, and nearest-neighbour
agreement (the reference's top-1 neighbour among the other samples is also this model's).
regression: mean squared error against the labels.
generation: next-token agreement with the reference model and perplexity (lm_metrics.py).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edgecompress.data import Split
from edgecompress.lm_metrics import lm_score, lm_summary
from edgecompress.model import ModelBundle, TaskKind

RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def predict(run: RunFn, bundle: ModelBundle, split: Split, batch_size: int = 64) -> np.ndarray:
    """The first output over the whole split, batch by batch."""
    chunks = []
    lm = bundle.task.kind == TaskKind.generation  # logits -> a row per position (lm_metrics)
    for batch in split.batches(min(batch_size, 16) if lm else batch_size):
        feeds = bundle.feeds(batch)
        first = next(iter(run(feeds).values()))
        if lm:
            chunks.append(lm_summary(first, feeds["input_ids"], feeds["attention_mask"]))
            continue
        chunks.append(np.asarray(first, dtype=np.float32))
    return np.concatenate(chunks)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(den, 1e-12)


def neighbour_agreement(reference: np.ndarray, candidate: np.ndarray) -> float:
    """Share of samples whose top-1 cosine neighbour (others only) is the same in both."""

    def top1(x: np.ndarray) -> np.ndarray:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        sims = x @ x.T
        np.fill_diagonal(sims, -np.inf)
        return sims.argmax(1)

    return float((top1(reference) == top1(candidate)).mean())


def sqnr_db(reference: np.ndarray, candidate: np.ndarray) -> float:
    noise = np.sum((reference.astype(np.float64) - candidate) ** 2)
    signal = np.sum(reference.astype(np.float64) ** 2)
    return float("inf") if noise == 0 else float(10 * np.log10(signal / noise))


def score(
    kind: TaskKind, outputs: np.ndarray, split: Split, reference: np.ndarray | None = None
) -> dict:
    """The metric dict for ``outputs`` of a whole split."""
    if kind == TaskKind.classification and split.labels is None:
        # Unlabelled data (a HF classifier on the default data): top-1 agreement with the
        # reference model (the original one; itself when there is none yet).
        top1 = outputs.argmax(1) if reference is None else reference.argmax(1)
        value = float((outputs.argmax(1) == top1).mean())
        return {"metric": "accuracy", "value": value, "labels": "reference model's top-1"}
    if kind == TaskKind.classification:
        return {"metric": "accuracy", "value": float((outputs.argmax(1) == split.labels).mean())}
    if kind == TaskKind.regression:
        mse = float(
            np.mean(
                (outputs.reshape(len(outputs), -1) - split.labels.reshape(len(outputs), -1)) ** 2
            )
        )
        return {"metric": "mse", "value": mse}
    if kind == TaskKind.generation:
        return lm_score(outputs, reference)
    if reference is None:
        return {"metric": "cosine", "value": 1.0, "min_cosine": 1.0, "neighbour_agreement": 1.0}
    cos = cosine_rows(reference, outputs)
    return {
        "metric": "cosine",
        "value": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "neighbour_agreement": neighbour_agreement(reference, outputs),
    }


def evaluate(
    run: RunFn, bundle: ModelBundle, split: Split, reference: np.ndarray | None = None
) -> tuple[dict, np.ndarray]:
    """(metric dict, raw outputs) of ``run`` over ``split``."""
    outputs = predict(run, bundle, split)
    return score(bundle.task.kind, outputs, split, reference), outputs


def higher_is_better(metric: str) -> bool:
    return metric != "mse"


def metric_drop(metric: str, baseline: float, value: float) -> float:
    """How much worse ``value`` is than ``baseline`` (positive = worse)."""
    return baseline - value if higher_is_better(metric) else value - baseline
