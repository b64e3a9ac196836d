"""The IO spec the zoo's digits models declare (8x8 grey images in, 10 logits out)."""

from __future__ import annotations

DIGITS_IO = {
    "inputs": [{"name": "image", "dtype": "float32", "shape": ["batch", 1, 8, 8]}],
    "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", 10]}],
}
