"""Calibration / representative data for the exporters' runtimes, from the batches of
:func:`edgecompress.data.calibration_batches` (the recipe's train split)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


def single_samples(batches: list[dict[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
    """The batches cut into batch-1 feeds (TFLite representative datasets want batch 1)."""
    for feeds in batches:
        n = len(next(iter(feeds.values())))
        for i in range(n):
            yield {k: v[i : i + 1] for k, v in feeds.items()}


def make_reader(batches: list[dict[str, np.ndarray]]):
    """An onnxruntime CalibrationDataReader over ``batches``."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(batches)

        def get_next(self):
            return next(self._it, None)

        def rewind(self):
            self._it = iter(batches)

    return _Reader()
