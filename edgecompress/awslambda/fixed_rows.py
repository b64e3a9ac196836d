"""Lambda bundles of fixed-shape TFLite files (litert-torch: batch 1, fixed sequence length).

The handler takes any batch and sequence length and feeds the file row by row (templates/
rows.py, hooked in handler.py.tmpl by ``SPEC["fixed_rows"]``); the self-check's reference
comes from the host's ai-edge-litert fed the same way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import tokenize
from edgecompress.runtimes import RowRunner, TFLiteRunner

TEMPLATE = Path(__file__).parent / "templates" / "rows.py"


def fixed_shapes(io: IOSpec) -> dict[str, list[int]] | None:
    """The static input shapes of a batch-1 file with no dynamic dimension, else None."""
    shapes = {s.name: list(s.shape) for s in io.inputs}
    static = all(all(isinstance(d, int) for d in v) and v[:1] == [1] for v in shapes.values())
    return shapes if shapes and static else None


def serving_io(io: IOSpec, fixed: dict) -> IOSpec:
    """The IO the handler accepts: any batch and, for token inputs, any sequence length."""

    def free(spec: TensorSpec) -> TensorSpec:
        dims = ["batch", *(("sequence",) if len(spec.shape) == 2 else spec.shape[1:])]
        return TensorSpec(spec.name, spec.dtype, tuple(dims), spec.scale, spec.zero_point)

    outputs = [TensorSpec(s.name, s.dtype, ("batch", *s.shape[1:])) for s in io.outputs]
    return IOSpec([free(s) for s in io.inputs], outputs)


def add(stage: Path, spec: dict, fixed: dict) -> None:
    shutil.copyfile(TEMPLATE, stage / "rows.py")
    spec["fixed_rows"] = fixed


def host_reference(model_path: Path, spec: dict, feeds, texts, tokenizer_dir) -> dict:
    """What the zip must answer: the host's ai-edge-litert run row by row."""
    io = IOSpec.from_dict(spec)
    if texts is not None:
        text = spec["text"]
        feeds = tokenize(
            tokenizer_dir, texts, io, int(text["max_length"]),
            pad_id=int(text["pad_id"]), pad_token=text["pad_token"],
        )  # fmt: skip
    shapes = {k: tuple(v) for k, v in spec["fixed_rows"].items()}
    runner = RowRunner(TFLiteRunner(Path(model_path), threads=1, io=io), shapes)
    outputs = runner.run({k: np.asarray(v) for k, v in feeds.items()})
    return {t["name"]: np.asarray(outputs[t["name"]]) for t in spec["outputs"]}
