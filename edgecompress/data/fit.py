"""Whether a dataset fits a model, checked before any work starts: text for text models,
tensors of the input's shape for tensor models; and the sample a factory's inputs are
inferred from when the recipe declares none."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgecompress.data.splits import DataSplits
from edgecompress.errors import DataFileError

if TYPE_CHECKING:
    from edgecompress.model import ModelBundle


def first_sample(data: DataSplits) -> np.ndarray | None:
    """One training sample with its batch dim ([1, ...]), or None for text data."""
    split = data.train
    return None if split.x is None or len(split) == 0 else split.x[:1]


def check_fits(bundle: ModelBundle, data: DataSplits, where: str = "task.data") -> None:
    """DataFileError (exit 2) when ``data`` cannot feed ``bundle``, naming the field."""
    split = data.train
    if split.texts is not None:
        if bundle.tokenizer_dir is None:
            raise DataFileError(
                f"{where}: {data.name} holds texts, and the model has no tokenizer (text data "
                "feeds Hugging Face text models)"
            )
        return
    if bundle.tokenizer_dir is not None:
        raise DataFileError(
            f"{where}: {data.name} holds tensors, and the model is a text model (name a text "
            "dataset: sentences, topics, or a CSV/JSONL/Parquet table)"
        )
    if bundle.extra.get("image") or len(bundle.io.inputs) != 1 or split.x is None:
        return  # image classifiers resize; multi-input models are fed by their own data
    spec, got = bundle.io.inputs[0], tuple(split.x.shape[1:])
    want = tuple(spec.shape[1:])
    if len(got) != len(want) or any(
        isinstance(w, int) and w != g for w, g in zip(want, got, strict=True)
    ):
        raise DataFileError(
            f"{where}: {data.name}: x: samples of shape {list(got)} do not fit the model's "
            f"input {spec.name!r} {list(spec.shape)}"
        )
