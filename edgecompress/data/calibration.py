"""Model feeds from the run's data: the calibration batches of compressors and exporters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecompress.errors import DataError

if TYPE_CHECKING:
    from edgecompress.model import ModelBundle


def calibration_batches(
    bundle: ModelBundle, ctx, samples: int, *, batch_size: int
) -> list[dict[str, np.ndarray]]:
    """Model feeds (numpy) for the first ``samples`` samples of the run's train split, in
    batches of ``batch_size``: the calibration data of compressors and exporters alike."""
    split = getattr(getattr(ctx, "data", None), "train", None)
    if split is None or len(split) == 0:
        raise DataError("calibration needs the recipe's data: its train split is empty")
    return [bundle.feeds(b) for b in split.take(samples).batches(batch_size)]
