"""Data files written from real data (the digits and topics built-ins)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


def write_pngs(root: Path, x: np.ndarray, labels: np.ndarray, names: list[str], suffix=".png"):
    """[N, C, H, W] floats in [0, 1] as 8-bit image files under root/<class>/."""
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, labels, strict=True)):
        folder = root / names[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        mode_array = pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0)
        Image.fromarray(mode_array).save(folder / f"{i:04d}{suffix}")
    return root


@pytest.fixture(scope="session")
def digits_all(digits_data):
    """All 1,797 digits (x [N, 1, 8, 8], y) in a fixed order."""
    parts = (digits_data.train, digits_data.val, digits_data.test)
    return np.concatenate([p.x for p in parts]), np.concatenate([p.labels for p in parts])


@pytest.fixture(scope="session")
def topics_rows():
    """(text, topic name) rows of the topics set, the first 120."""
    from edgecompress.data import load_topics

    data = load_topics()
    names = data.meta["classes"]
    return [(t, names[int(y)]) for t, y in zip(data.train.texts, data.train.labels, strict=True)][
        :120
    ]


def write_table(path: Path, rows: list[dict]) -> Path:
    """rows as CSV, JSONL or Parquet, by the suffix of ``path``."""
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif path.suffix == ".csv":
        import csv

        with open(path, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["text", "label"])
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path
