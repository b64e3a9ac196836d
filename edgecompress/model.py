"""ModelBundle: a model plus everything the pipeline needs to know about it.

Loaders (one per source a user has): a factory ``pkg.module:function`` plus a state_dict file,
a ``torch.export`` ``.pt2`` file, a local Hugging Face folder (offline), or an ONNX file.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from edgecompress.errors import DataError, ModelLoadError
from edgecompress.iospec import IOSpec, TensorSpec


class TaskKind(str, Enum):
    classification = "classification"
    embedding = "embedding"
    regression = "regression"
    generation = "generation"  # causal LMs: logits for every position, greedy decoding


DEFAULT_METRIC = {
    TaskKind.classification: "accuracy",
    TaskKind.embedding: "cosine",
    TaskKind.regression: "mse",
    TaskKind.generation: "next_token_agreement",
}


@dataclass
class TaskSpec:
    kind: TaskKind = TaskKind.classification
    data: str | dict = "digits"  # a name, a path, or a data-source mapping
    metric: str = "accuracy"
    max_length: int = 128  # text models: tokenizer truncation

    def to_dict(self) -> dict:
        return {
            "kind": self.kind.value,
            "data": self.data,
            "metric": self.metric,
            "max_length": self.max_length,
        }


@dataclass
class StepRecord:
    """One applied step, as it appears in manifest.json."""

    name: str
    config: dict
    stats: dict = field(default_factory=dict)
    seconds: float = 0.0
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class ModelBundle:
    """A model and its IO spec, example inputs, task and history. Compressors return new ones."""

    module: Any | None  # torch.nn.Module; None for an ONNX-only bundle
    io: IOSpec
    example_inputs: dict[str, np.ndarray]
    task: TaskSpec
    source: dict = field(default_factory=dict)
    history: list[StepRecord] = field(default_factory=list)
    quant_spec: Any | None = None  # quantspec.QuantSpec, realised natively by each exporter
    # The module as it was before the torch quantization was applied: exporters quantize this
    # one with their own backend's tools (None when the bundle is not quantized).
    float_module: Any | None = None
    onnx_path: Path | None = None
    tokenizer_dir: Path | None = None  # text models: folder holding tokenizer.json
    extra: dict = field(default_factory=dict)  # loader-specific facts (hf config, ...)

    @property
    def is_text(self) -> bool:
        return self.tokenizer_dir is not None

    def replace(self, **changes) -> ModelBundle:
        """A shallow copy with ``changes``; the history list is copied, not shared."""
        changes.setdefault("history", list(self.history))
        return dataclasses.replace(self, **changes)

    def clone_module(self):
        return copy.deepcopy(self.module)

    def feeds(self, batch) -> dict[str, np.ndarray]:
        """Model feeds for a data ``Split`` batch (tokenized for text models)."""
        if batch.texts is not None and self.tokenizer_dir is None:
            raise DataError(
                f"task.data {self.task.data!r} holds texts, and this model has no tokenizer "
                "(text data feeds Hugging Face text models)"
            )
        if batch.texts is not None:
            return tokenize(self.tokenizer_dir, batch.texts, self.io, self.task.max_length)
        if self.extra.get("image") and batch.x is not None:  # HF image classifiers
            from edgecompress.hf.preprocess import ImagePreprocess, image_feeds

            pre = ImagePreprocess.from_dict(self.extra["image"])
            return image_feeds(batch.x, self.io.inputs[0].name, pre)
        if len(self.io.inputs) != 1:
            hint = " (a text model: name a text dataset, e.g. topics)" if self.is_text else ""
            raise DataError(
                f"task.data {self.task.data!r} holds tensors: they feed single-input models "
                f"only, and this model takes {', '.join(self.io.input_names)}{hint}"
            )
        spec = self.io.inputs[0]
        return {spec.name: np.ascontiguousarray(batch.x, dtype=spec.dtype)}

    def param_count(self) -> int:
        if self.module is None:
            return 0
        return sum(p.numel() for p in self.module.parameters())


_TOKENIZERS: dict[tuple, Any] = {}


def tokenize(
    tokenizer_dir,
    texts: list[str],
    io: IOSpec,
    max_length: int,
    length: int | None = None,
    pad_id: int | None = None,
    pad_token: str = "[PAD]",
) -> dict:
    """Tokenize with the fast ``tokenizers`` library (as the Lambda handler does): truncate to
    ``max_length``, pad with ``pad_token`` (id ``pad_id``, default its id in the vocabulary or
    0) to the longest text, or to ``length`` when given. One array per input of ``io``."""
    from tokenizers import Tokenizer

    key = (str(tokenizer_dir), max_length, length, pad_id, pad_token)
    if key not in _TOKENIZERS:
        tok = Tokenizer.from_file(str(Path(tokenizer_dir) / "tokenizer.json"))
        tok.enable_truncation(max_length)
        pad = pad_id if pad_id is not None else tok.token_to_id(pad_token) or 0
        tok.enable_padding(pad_id=pad, pad_token=pad_token, length=length)
        _TOKENIZERS[key] = tok
    encodings = _TOKENIZERS[key].encode_batch(list(texts))
    columns = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    return {s.name: np.asarray(columns[s.name], dtype=s.dtype) for s in io.inputs}


def infer_outputs(module, io_inputs: list[TensorSpec], examples: dict, names=None):
    """Run the module once on ``examples`` to learn output dtypes and shapes."""
    import torch

    with torch.no_grad():
        out = module(*[torch.from_numpy(examples[s.name]) for s in io_inputs])
    outs = out if isinstance(out, tuple | list) else (out,)
    batch_dims = {s.shape[0] for s in io_inputs if s.shape and isinstance(s.shape[0], str)}
    batch = next(iter(batch_dims), None)
    specs = []
    for i, tensor in enumerate(outs):
        name = (
            names[i]
            if names and i < len(names)
            else ("output" if len(outs) == 1 else f"output_{i}")
        )
        shape = list(tensor.shape)
        if batch and shape:
            shape[0] = batch
        specs.append(TensorSpec(name, str(tensor.detach().numpy().dtype), tuple(shape)))
    return specs


# Declared shapes are not trusted: a 77-byte ONNX file may declare a [1, 2**31] input.
MAX_EXAMPLE_ELEMENTS = 1 << 24


def example_shape(spec: TensorSpec, batch: int, seq: int) -> list[int]:
    """``spec``'s shape with dynamic dims filled; refuses one too large to exercise."""
    shape = [batch if d == spec.shape[0] and isinstance(d, str) else d for d in spec.shape]
    shape = [seq if isinstance(d, str) else d for d in shape]
    if any(d < 0 for d in shape) or math.prod(shape) > MAX_EXAMPLE_ELEMENTS:
        raise ModelLoadError(
            f"input {spec.name!r} declares shape {list(spec.shape)}: {math.prod(shape):,} "
            f"elements, too large to exercise (limit {MAX_EXAMPLE_ELEMENTS:,})"
        )
    return shape


def example_inputs_for(inputs: list[TensorSpec], batch: int = 2, seq: int = 16) -> dict:
    """Deterministic example inputs of the right dtype for an IO spec."""
    rng = np.random.default_rng(0)
    examples = {}
    for spec in inputs:
        shape = example_shape(spec, batch, seq)
        if spec.dtype.startswith("int"):
            examples[spec.name] = (
                np.ones(shape, dtype=spec.dtype)
                if "mask" in spec.name
                else rng.integers(0, 100, size=shape).astype(spec.dtype)
            )
        else:
            examples[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return examples
