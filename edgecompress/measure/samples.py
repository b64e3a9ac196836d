"""Per-sample scores of one variant on the eval split, kept in report.json so that
``compress compare`` can test whether two runs really differ (a paired test needs the same
samples, in the same order, scored one by one; see edgecompress.report.significance).

classification: 1 when the top-1 class is the label, else 0 (their mean is the accuracy);
regression: the squared error of each sample (mean: the mse);
embedding: the cosine of each embedding to the original model's (mean: the cosine metric).
"""

from __future__ import annotations

import hashlib

import numpy as np

from edgecompress.data import Split
from edgecompress.metrics import cosine_rows
from edgecompress.model import TaskKind

SCORES = {
    TaskKind.classification: "correct",
    TaskKind.regression: "squared_error",
    TaskKind.embedding: "cosine",
}


def split_fingerprint(split: Split) -> str:
    """sha256 of the eval samples and labels: two reports pair only when it is the same."""
    digest = hashlib.sha256()
    if split.x is not None:
        digest.update(np.ascontiguousarray(split.x).tobytes())
    for text in split.texts or []:
        digest.update(text.encode("utf-8") + b"\0")
    if split.labels is not None:
        digest.update(np.ascontiguousarray(split.labels).tobytes())
    return digest.hexdigest()


def per_sample_scores(
    kind: TaskKind, outputs: np.ndarray, split: Split, reference: np.ndarray | None = None
) -> np.ndarray | None:
    """One score per sample whose mean is the task metric (None when it has no such score)."""
    if kind == TaskKind.classification and split.labels is not None:
        return (outputs.argmax(1) == split.labels).astype(np.int8)
    if kind == TaskKind.regression and split.labels is not None:
        diff = outputs.reshape(len(outputs), -1) - split.labels.reshape(len(outputs), -1)
        return np.mean(diff.astype(np.float64) ** 2, axis=1)
    if kind == TaskKind.embedding and reference is not None:
        return cosine_rows(reference, outputs)
    return None


def accuracy_samples(
    metric: str, kind: TaskKind, outputs, split: Split, reference=None
) -> dict | None:
    """The report.json ``accuracy_samples`` entry of a variant (None when not scorable)."""
    if outputs is None:
        return None
    scores = per_sample_scores(kind, np.asarray(outputs), split, reference)
    if scores is None:
        return None
    values = scores.tolist() if scores.dtype.kind in "iu" else np.round(scores, 7).tolist()
    return {
        "metric": metric,
        "score": SCORES[kind],
        "n": len(values),
        "values": values,
        "eval_sha256": split_fingerprint(split),
    }
