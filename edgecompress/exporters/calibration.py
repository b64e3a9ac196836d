"""Calibration / representative data from the recipe's data (the train split)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from edgecompress.errors import DataError
from edgecompress.model import ModelBundle


def calibration_batches(
    bundle: ModelBundle, ctx, samples: int, batch_size: int = 16
) -> list[dict[str, np.ndarray]]:
    """Model feeds for the first ``samples`` training samples, in batches."""
    split = getattr(getattr(ctx, "data", None), "train", None)
    if split is None or len(split) == 0:
        raise DataError("calibration needs the recipe's data: its train split is empty")
    return [bundle.feeds(b) for b in split.take(samples).batches(batch_size)]


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
