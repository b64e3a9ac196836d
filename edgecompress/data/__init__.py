"""Datasets for calibration, fine-tuning and evaluation, one module per source.

- built-ins (builtins.py, topics.py): ``digits``, ``sentences``, ``topics``; nothing downloads;
- ``pkg.module:function`` returning a ``DataSplits`` or ``{"train": Split, "val": ..., "test":
  ...}``;
- files (source.py): ``.npz`` / ``.npy`` folders (arrays.py), image folders (images.py), CSV /
  JSONL / Parquet text tables (tables.py).
"""

from __future__ import annotations

from edgecompress.data.builtins import BUILTIN_DATASETS, TEXT_BUILTINS, load_digits, load_sentences
from edgecompress.data.calibration import calibration_batches
from edgecompress.data.fit import check_fits, first_sample
from edgecompress.data.prose import english_sentences
from edgecompress.data.source import DataSource, describe, load_dataset, parse_spec, resolve
from edgecompress.data.splits import DEFAULT_SEED, DataSplits, Split, class_balance
from edgecompress.data.topics import load_topics

__all__ = [
    "BUILTIN_DATASETS",
    "DEFAULT_SEED",
    "TEXT_BUILTINS",
    "DataSource",
    "DataSplits",
    "Split",
    "calibration_batches",
    "check_fits",
    "class_balance",
    "describe",
    "english_sentences",
    "first_sample",
    "load_dataset",
    "load_digits",
    "load_sentences",
    "load_topics",
    "parse_spec",
    "resolve",
]
