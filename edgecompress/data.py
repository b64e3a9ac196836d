"""Datasets for calibration, fine-tuning and evaluation.

Built-ins (both ship with installed packages, nothing is downloaded):
- ``digits``: scikit-learn's bundled 8x8 handwritten digits, 1,797 real images with labels,
  scaled to [0, 1], shaped [N, 1, 8, 8], split 60/20/20 (stratified, fixed seed).
- ``sentences``: English sentences from the standard library's ``pydoc_data.topics``
  (the text of Python's reference manual), deduplicated, for text models.

A user dataset is ``"pkg.module:function"`` returning a ``DataSplits`` or a dict
``{"train": Split, "val": Split, "test": Split}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgecompress.errors import DataError
from edgecompress.imports import import_object

if TYPE_CHECKING:
    from edgecompress.model import ModelBundle

DEFAULT_SEED = 0


@dataclass
class Split:
    """One split: tensor features (``x``) or texts, and optional labels."""

    x: np.ndarray | None = None
    texts: list[str] | None = None
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        if self.x is not None:
            return len(self.x)
        return len(self.texts or [])

    def take(self, n: int | None) -> Split:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return Split(
            x=None if self.x is None else self.x[:n],
            texts=None if self.texts is None else self.texts[:n],
            labels=None if self.labels is None else self.labels[:n],
        )

    def batches(self, batch_size: int) -> Iterator[Split]:
        for start in range(0, len(self), batch_size):
            stop = start + batch_size
            yield Split(
                x=None if self.x is None else self.x[start:stop],
                texts=None if self.texts is None else self.texts[start:stop],
                labels=None if self.labels is None else self.labels[start:stop],
            )


@dataclass
class DataSplits:
    name: str
    train: Split
    val: Split
    test: Split
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r} (expected train, val or test)")
        return getattr(self, name)


def load_digits(seed: int = DEFAULT_SEED) -> DataSplits:
    """scikit-learn's bundled digits: [N, 1, 8, 8] float32 in [0, 1], int64 labels."""
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    raw = sk_load_digits()
    x = (raw.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = raw.target.astype(np.int64)
    x_train, x_rest, y_train, y_rest = train_test_split(
        x, y, test_size=0.4, random_state=seed, stratify=y
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.5, random_state=seed, stratify=y_rest
    )
    return DataSplits(
        "digits",
        Split(x=x_train, labels=y_train),
        Split(x=x_val, labels=y_val),
        Split(x=x_test, labels=y_test),
        meta={"source": "sklearn.datasets.load_digits", "classes": 10, "seed": seed},
    )


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def english_sentences(min_words: int = 6, max_words: int = 60) -> list[str]:
    """Deduplicated prose sentences from Python's bundled reference manual, in a fixed order."""
    from pydoc_data.topics import topics

    seen: set[str] = set()
    sentences: list[str] = []
    for key in sorted(topics):
        for paragraph in topics[key].split("\n\n"):
            if paragraph.startswith((" ", "\t")) or ">>>" in paragraph:
                continue  # code samples and indented tables are not prose
            text = " ".join(paragraph.split())
            for sentence in _SENTENCE_END.split(text):
                words = sentence.split()
                if not (min_words <= len(words) <= max_words) or sentence in seen:
                    continue
                if not sentence[0].isupper() or not sentence.endswith((".", "!", "?")):
                    continue
                seen.add(sentence)
                sentences.append(sentence)
    return sentences


def load_sentences(seed: int = DEFAULT_SEED) -> DataSplits:
    """English sentences, shuffled with ``seed``, split 40/20/40 (the test split holds > 500)."""
    sentences = english_sentences()
    order = np.random.default_rng(seed).permutation(len(sentences))
    shuffled = [sentences[i] for i in order]
    n_train, n_val = int(0.4 * len(shuffled)), int(0.2 * len(shuffled))
    return DataSplits(
        "sentences",
        Split(texts=shuffled[:n_train]),
        Split(texts=shuffled[n_train : n_train + n_val]),
        Split(texts=shuffled[n_train + n_val :]),
        meta={"source": "pydoc_data.topics", "seed": seed, "total": len(shuffled)},
    )


def calibration_batches(
    bundle: ModelBundle, ctx, samples: int, *, batch_size: int
) -> list[dict[str, np.ndarray]]:
    """Model feeds (numpy) for the first ``samples`` samples of the run's train split, in
    batches of ``batch_size``: the calibration data of compressors and exporters alike."""
    split = getattr(getattr(ctx, "data", None), "train", None)
    if split is None or len(split) == 0:
        raise DataError("calibration needs the recipe's data: its train split is empty")
    return [bundle.feeds(b) for b in split.take(samples).batches(batch_size)]


BUILTIN_DATASETS = {"digits": load_digits, "sentences": load_sentences}


def load_dataset(spec: str, seed: int = DEFAULT_SEED) -> DataSplits:
    """A built-in name or ``pkg.module:function``."""
    if spec in BUILTIN_DATASETS:
        return BUILTIN_DATASETS[spec](seed=seed)
    if ":" not in spec:
        known = ", ".join(sorted(BUILTIN_DATASETS))
        raise DataError(f"unknown dataset {spec!r}: use a built-in ({known}) or 'pkg.module:fn'")

    loader = import_object(spec, what="dataset")
    result = loader()
    if isinstance(result, dict):
        try:
            result = DataSplits(spec, result["train"], result["val"], result["test"])
        except KeyError as exc:
            raise DataError(f"dataset {spec!r} returned no {exc.args[0]!r} split") from None
    if not isinstance(result, DataSplits):
        raise DataError(f"dataset {spec!r} must return DataSplits or a dict of Split")
    return result
