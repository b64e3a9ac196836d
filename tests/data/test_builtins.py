"""Built-in datasets: real data, fixed splits."""

from __future__ import annotations

import numpy as np
import pytest

from edgecompress.data import load_dataset, load_digits, load_sentences
from edgecompress.errors import DataError


def test_digits_splits_are_fixed_and_disjoint():
    a, b = load_digits(), load_digits()
    assert (len(a.train), len(a.val), len(a.test)) == (1078, 359, 360)
    np.testing.assert_array_equal(a.test.x, b.test.x)
    assert a.train.x.shape[1:] == (1, 8, 8) and a.train.x.dtype == np.float32
    assert a.train.x.min() >= 0.0 and a.train.x.max() <= 1.0
    assert set(np.unique(a.test.labels)) == set(range(10))


def test_sentences_are_english_prose():
    data = load_sentences()
    assert len(data.test) >= 500
    assert all(s[0].isupper() and s[-1] in ".!?" for s in data.test.texts[:50])
    assert len(set(data.train.texts) & set(data.test.texts)) == 0


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
