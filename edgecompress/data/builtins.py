"""Built-in datasets that ship with installed packages (nothing is downloaded).

- ``digits``: scikit-learn's bundled 8x8 handwritten digits, 1,797 real images with labels,
  scaled to [0, 1], shaped [N, 1, 8, 8], split 60/20/20 (stratified, fixed seed).
- ``sentences``: English sentences from the standard library's ``pydoc_data.topics``
  (the text of Python's reference manual), deduplicated, for text models.
- ``topics``: the same sentences labelled with the reference-manual topic they come from
  (see topics.py).
"""

from __future__ import annotations

import numpy as np

from edgecompress.data.prose import english_sentences
from edgecompress.data.splits import DEFAULT_SEED, DataSplits, Split
from edgecompress.data.topics import load_topics


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


BUILTIN_DATASETS = {"digits": load_digits, "sentences": load_sentences, "topics": load_topics}
TEXT_BUILTINS = ("sentences", "topics")
