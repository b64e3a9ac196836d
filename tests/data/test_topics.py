"""The built-in ``topics`` set: reference-manual sentences labelled with their topic."""

from __future__ import annotations

import sys

import numpy as np

from edgecompress.data import class_balance, load_dataset, load_topics
from edgecompress.data.topics import NUM_TOPICS, topic_sentences


def test_topics_are_labelled_unambiguous_and_stratified():
    data = load_dataset("topics")
    names = data.meta["classes"]
    assert len(names) == NUM_TOPICS == 16
    assert len(set(names)) == 16 and "types" in names and "compound" in names
    texts = data.train.texts + data.val.texts + data.test.texts
    assert len(texts) == len(set(texts)) == data.meta["total"]  # each sentence once, one label
    counts = class_balance(data)
    assert min(counts.values()) >= 10 and list(counts) and sum(counts.values()) == len(texts)
    for split, share in ((data.train, 0.5), (data.val, 0.2), (data.test, 0.3)):
        per_class = np.bincount(split.labels, minlength=16)
        expected = share * np.array([counts[n] for n in names])
        assert np.all(np.abs(per_class - expected) <= 1.5)  # stratified per class


def test_labels_are_the_page_each_sentence_came_from():
    from pydoc_data.topics import topics

    sentences, labels, names = topic_sentences()
    for sentence, label in list(zip(sentences, labels, strict=True))[::25]:
        pages = [k for k, text in topics.items() if sentence in " ".join(text.split())]
        assert names[label] in pages


def test_topics_splits_are_fixed():
    a, b = load_topics(), load_topics()
    assert a.test.texts == b.test.texts
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert load_topics(seed=1).test.texts != a.test.texts
    if sys.version_info[:2] == (3, 11):  # pydoc_data changes between Python releases
        assert (len(a.train), len(a.val), len(a.test)) == (389, 155, 234)
