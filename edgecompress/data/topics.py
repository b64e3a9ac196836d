"""``topics``: a labelled English text set that ships offline.

The prose sentences of the standard library's ``pydoc_data.topics`` (Python's reference
manual, one page per topic), each labelled with the topic page it comes from. A sentence
found on several pages (``compound`` repeats ``try``, ``with`` ...) is ambiguous and dropped;
the 16 topics with the most remaining sentences are the classes (class index = rank, largest
first). Split 50/20/30, stratified, with a fixed seed: the same splits on every machine with
the same Python (``pydoc_data`` changes between Python releases; CPython 3.11.7 gives 778
sentences, the largest class 196, the smallest 14).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from edgecompress.data.prose import prose_sentences
from edgecompress.data.splits import DEFAULT_SEED, DataSplits, Split

NUM_TOPICS = 16
FRACTIONS = (0.5, 0.2, 0.3)


def topic_sentences(num_topics: int = NUM_TOPICS) -> tuple[list[str], list[int], list[str]]:
    """(sentences, label per sentence, topic names): unambiguous sentences of the largest
    ``num_topics`` topics, in a fixed order."""
    from pydoc_data.topics import topics

    pages: dict[str, set[str]] = defaultdict(set)
    for key in sorted(topics):
        for sentence in prose_sentences(topics[key]):
            pages[sentence].add(key)
    by_topic: dict[str, list[str]] = defaultdict(list)
    for sentence, keys in pages.items():
        if len(keys) == 1:
            by_topic[next(iter(keys))].append(sentence)
    names = sorted(by_topic, key=lambda k: (-len(by_topic[k]), k))[:num_topics]
    sentences = [s for name in names for s in by_topic[name]]
    labels = [i for i, name in enumerate(names) for _ in by_topic[name]]
    return sentences, labels, names


def load_topics(seed: int = DEFAULT_SEED, num_topics: int = NUM_TOPICS) -> DataSplits:
    """The topics set, split 50/20/30 per class (stratified) after a shuffle with ``seed``."""
    from sklearn.model_selection import train_test_split

    sentences, labels, names = topic_sentences(num_topics)
    y = np.asarray(labels, dtype=np.int64)
    index = np.arange(len(sentences))
    train, rest = train_test_split(index, train_size=FRACTIONS[0], random_state=seed, stratify=y)
    val_share = FRACTIONS[1] / (FRACTIONS[1] + FRACTIONS[2])
    val, test = train_test_split(rest, train_size=val_share, random_state=seed, stratify=y[rest])

    def part(rows: np.ndarray) -> Split:
        return Split(texts=[sentences[i] for i in rows], labels=y[rows])

    meta = {"source": "pydoc_data.topics", "seed": seed, "classes": names, "total": len(y)}
    return DataSplits("topics", part(train), part(val), part(test), meta=meta)
