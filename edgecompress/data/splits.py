"""Splits: what every dataset is, however it was stored (arrays, images, tables, built-ins)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgecompress.errors import DataError, DataFileError

DEFAULT_SEED = 0
SPLITS = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)  # train / val / test when a source gives no splits


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

    def _rows(self, index) -> Split:
        return Split(
            x=None if self.x is None else self.x[index],
            texts=None if self.texts is None else _pick(self.texts, index),
            labels=None if self.labels is None else self.labels[index],
        )

    def take(self, n: int | None) -> Split:
        """The first ``n`` samples (all when ``n`` is None)."""
        if n is None or n >= len(self):
            return self
        return self._rows(slice(0, n))

    def batches(self, batch_size: int) -> Iterator[Split]:
        for start in range(0, len(self), batch_size):
            yield self._rows(slice(start, start + batch_size))


def _pick(texts: list[str], index) -> list[str]:
    if isinstance(index, slice):
        return texts[index]
    return [texts[i] for i in index]


@dataclass
class DataSplits:
    name: str
    train: Split
    val: Split
    test: Split
    meta: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r} (expected train, val or test)")
        return getattr(self, name)

    @property
    def class_names(self) -> list[str] | None:
        return self.meta.get("classes") if isinstance(self.meta.get("classes"), list) else None


def split_indices(labels: np.ndarray | None, n: int, seed: int) -> list[np.ndarray]:
    """Train / val / test row indices, 60/20/20, shuffled with ``seed``; stratified by label
    when every class has at least 5 samples (sklearn's rule needs 2 per class per cut)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(n)
    stratify = labels
    if labels is None or np.unique(labels, return_counts=True)[1].min() < 5:
        stratify = None
    train, rest = train_test_split(index, test_size=0.4, random_state=seed, stratify=stratify)
    rest_strat = None if stratify is None else labels[rest]
    val, test = train_test_split(rest, test_size=0.5, random_state=seed, stratify=rest_strat)
    return [train, val, test]


def split_whole(name: str, whole: Split, seed: int, meta: dict) -> DataSplits:
    """A source without splits, cut 60/20/20 with a fixed seed (stratified when labelled)."""
    if len(whole) < 3:
        raise DataFileError(
            f"{name}: {len(whole)} sample(s); at least 3 are needed (train/val/test)"
        )
    parts = split_indices(whole.labels, len(whole), seed)
    meta = {**meta, "seed": seed, "split": "60/20/20"}
    return DataSplits(name, *(whole._rows(p) for p in parts), meta=meta)


def encode_labels(
    name: str, field: str, per_split: Sequence[list], classes: list[str] | None = None
) -> tuple[list[np.ndarray], list[str] | None]:
    """Integer labels for each split's raw labels. Names become their index in ``classes``
    (default: the sorted names of the first split); ints stay ints (checked against
    ``classes`` when given). A label outside them is refused, naming the file and field."""
    values = [v for labels in per_split for v in labels]
    named = classes is not None and all(str(v) in classes for v in values)
    if not named and values and all(_is_int(v) for v in values):
        out = [np.asarray([int(v) for v in labels], dtype=np.int64) for labels in per_split]
        low, high = min(int(v) for v in values), max(int(v) for v in values)
        limit = len(classes) if classes is not None else None
        if low < 0 or (limit is not None and high >= limit):
            bad = low if low < 0 else high
            allowed = f"0..{limit - 1}" if limit is not None else "0 or more"
            raise DataFileError(f"{name}: {field}: unknown label {bad} (labels are {allowed})")
        return out, classes
    if classes is None:
        classes = sorted({str(v) for v in per_split[0]})
    lookup = {c: i for i, c in enumerate(classes)}
    unknown = next((str(v) for v in values if str(v) not in lookup), None)
    if unknown is not None:
        shown = ", ".join(classes[:10]) + (" ..." if len(classes) > 10 else "")
        raise DataFileError(f"{name}: {field}: unknown label {unknown!r} (known: {shown})")
    return [np.asarray([lookup[str(v)] for v in vs], dtype=np.int64) for vs in per_split], classes


def encode_each(
    names: list[str], field: str, per_split: Sequence[list], classes: list[str] | None = None
) -> tuple[list[np.ndarray], list[str] | None]:
    """encode_labels split by split, so a refusal names the file (or folder) holding the
    label; the first split fixes the class names unless ``classes`` are given."""
    out = []
    for name, labels in zip(names, per_split, strict=True):
        (encoded,), found = encode_labels(name, field, [labels], classes)
        classes = classes if classes is not None else found
        out.append(encoded)
    return out, classes


def _is_int(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | np.integer):
        return True
    if isinstance(value, float | np.floating):
        return float(value).is_integer()
    return isinstance(value, str) and value.strip().lstrip("-").isdigit()


def class_balance(splits: DataSplits) -> dict[str, int]:
    """Samples per class over all splits (names when known)."""
    names = splits.class_names
    counts: dict[str, int] = {}
    for part in (splits.train, splits.val, splits.test):
        for label in [] if part.labels is None else part.labels.tolist():
            key = names[label] if names and 0 <= label < len(names) else str(label)
            counts[key] = counts.get(key, 0) + 1
    return counts
