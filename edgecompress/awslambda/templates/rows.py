"""Fixed-shape model files (litert-torch writes batch 1 and a fixed sequence length): run a
request one row at a time, token rows padded (mask 0) or cut to the file's length.
Copied into the zip beside handler.py; stdlib + numpy only."""

import numpy as np


def _fit(array, shape, pad):
    if array.ndim != 2 or len(shape) != 2 or array.shape[1] == shape[1]:
        return array
    out = np.full((1, shape[1]), pad, dtype=array.dtype)
    keep = min(shape[1], array.shape[1])
    out[:, :keep] = array[:, :keep]
    return out


def wrap(run, fixed, pad_ids=None):
    """``run`` over batches: ``fixed`` maps input names to the file's static shapes."""
    pads = pad_ids or {}

    def run_rows(feeds):
        n = len(next(iter(feeds.values())))
        outs = [
            run({k: _fit(v[i : i + 1], fixed[k], pads.get(k, 0)) for k, v in feeds.items()})
            for i in range(n)
        ]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

    return run_rows
