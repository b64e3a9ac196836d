"""Loaders that turn what a user has into a ModelBundle (see model.py).

Every file is opened defensively: checkpoints with ``torch.load(weights_only=True)`` (no
arbitrary unpickling), ONNX files through ``onnx.checker``; a problem is a ModelLoadError
naming the file and what is wrong.
"""

from __future__ import annotations

import os
import pickle
import pickletools
import zipfile
from pathlib import Path

import numpy as np

from edgecompress.errors import ModelLoadError
from edgecompress.exporters.onnx import kv_cache
from edgecompress.imports import import_object
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.model import (
    ModelBundle,
    TaskSpec,
    example_inputs_for,
    infer_outputs,
    tokenize,
)

PACKAGE_PREFIX = "package://"
EXAMPLE_TEXTS = ["Hello world.", "Models are compressed before they are shipped to the edge."]


def resolve_path(ref: str, base_dir: Path | None = None) -> Path:
    """A path relative to the recipe's folder, or ``package://pkg.module/file`` inside a package."""
    if ref.startswith(PACKAGE_PREFIX):
        import importlib.resources

        package, _, name = ref[len(PACKAGE_PREFIX) :].partition("/")
        try:
            return Path(str(importlib.resources.files(package).joinpath(name)))
        except ModuleNotFoundError:
            raise ModelLoadError(f"{ref}: no installed package {package!r}") from None
    path = Path(ref).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _require_file(path: Path, field: str) -> Path:
    if not path.exists():
        raise ModelLoadError(f"{field}: file not found: {path}")
    return path


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _pickle_globals(data: bytes, limit: int = 5) -> list[str]:
    """The module.name globals a pickle stream would import, read without executing it."""

    found, strings = [], []
    try:
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings = [*strings[-1:], arg]
            if op.name == "GLOBAL":
                found.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) == 2:
                found.append(".".join(strings))
    except Exception:  # a truncated or odd stream: report what was read so far
        pass
    return [g for g in dict.fromkeys(found) if not g.startswith(("torch.", "collections."))][:limit]


def _refusal(path: Path) -> str:
    """What makes ``path`` more than tensors: the globals its pickle would import."""

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            data = zf.read(names[0]) if names else b""
    else:
        data = path.read_bytes()
    found = _pickle_globals(data)
    return f"it imports {', '.join(found)}" if found else "it holds objects other than tensors"


def _looks_like_pickle_or_torch(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(2)
    return zipfile.is_zipfile(path) or (len(head) == 2 and head[0] == 0x80 and head[1] <= 5)


def load_state_dict(path: Path, field: str = "model.weights") -> dict:
    """A state_dict from ``path``, refusing anything but tensors (no arbitrary unpickling)."""

    import torch

    _require_file(path, field)
    if not _looks_like_pickle_or_torch(path):
        raise ModelLoadError(
            f"{field}: {path} is not a valid PyTorch weights file (neither a torch.save zip "
            "nor a pickle stream: corrupt, truncated or another format?)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise ModelLoadError(
            f"{field}: {path} is not a plain state_dict; refusing to unpickle it: "
            f"{_refusal(path)} (only tensors are loaded)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise ModelLoadError(
            f"{field}: {path} is not a valid PyTorch weights file (corrupt or truncated?): "
            f"{_first_line(exc)}"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{field}: {path} holds a {type(state).__name__}, not a state_dict")
    return state


def _spec_inputs(module, declared: list[dict] | None, field: str, sample=None) -> list[TensorSpec]:
    """Declared inputs win, then the module's ``io_spec``; else one input shaped like the
    dataset's first sample (``sample``: an array [1, ...] or a callable giving one or None),
    its batch dim dynamic."""
    raw = declared or (getattr(module, "io_spec", None) or {}).get("inputs")
    if not raw and sample is not None:
        array = sample() if callable(sample) else sample
        if array is not None:
            shape = ["batch", *array.shape[1:]]
            raw = [{"name": "input", "dtype": array.dtype.name, "shape": shape}]
    if not raw:
        raise ModelLoadError(
            f"{field}: the model declares no inputs; add 'inputs: [{{name, dtype, shape}}]' "
            "to the recipe's model section (named dims such as 'batch' are dynamic)"
        )
    return [TensorSpec.from_dict(d) for d in raw]


def load_factory(
    factory: str,
    weights: str | None,
    task: TaskSpec,
    base_dir: Path | None = None,
    factory_args: dict | None = None,
    inputs: list[dict] | None = None,
    sample=None,
) -> ModelBundle:
    """A factory's module (+ weights). Without declared inputs, the input spec comes from the
    module's ``io_spec`` or from ``sample`` (see _spec_inputs)."""
    fn = import_object(factory, what="model.factory", search_dir=base_dir)
    try:
        module = fn(**(factory_args or {}))
    except Exception as exc:  # a user's factory may raise anything
        raise ModelLoadError(f"model.factory: {factory}() failed: {exc}") from exc
    weights_path = None
    if weights:
        weights_path = resolve_path(weights, base_dir)
        state = load_state_dict(weights_path)
        result = module.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ModelLoadError(
                f"model.weights: {weights_path} does not fit {factory}: "
                f"missing {result.missing_keys[:5]}, unexpected {result.unexpected_keys[:5]}"
            )
    module.eval()
    specs = _spec_inputs(module, inputs, "model.inputs", sample)
    examples = example_inputs_for(specs)
    out_names = [d["name"] for d in (getattr(module, "io_spec", None) or {}).get("outputs", [])]
    io = IOSpec(specs, infer_outputs(module, specs, examples, out_names or ["logits"]))
    source = {"kind": "factory", "factory": factory, "weights": str(weights_path or "")}
    return ModelBundle(module, io, examples, task, source=source)


def load_pt2(path: Path, task: TaskSpec) -> ModelBundle:
    import torch

    _require_file(path, "model.pt2")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # torch raises many types for a bad archive
        raise ModelLoadError(f"model.pt2: {path} is not a torch.export program: {exc}") from None
    module = program.module()
    specs = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in program.graph_signature.user_inputs:
            fake = node.meta["val"]
            shape = tuple(
                int(d) if str(d).isdigit() else ("batch" if i == 0 else f"d{i}")
                for i, d in enumerate(fake.shape)
            )
            specs.append(TensorSpec(node.name, str(fake.dtype).removeprefix("torch."), shape))
    examples = example_inputs_for(specs)
    io = IOSpec(specs, infer_outputs(module, specs, examples, ["output"]))
    return ModelBundle(module, io, examples, task, source={"kind": "pt2", "path": str(path)})


def load_onnx(path: Path, task: TaskSpec, examples: bool = True) -> ModelBundle:
    """An ONNX file's bundle; ``examples=False`` builds no example inputs (``inspect``: the
    declared shapes are only read, never allocated)."""
    import onnx

    _require_file(path, "model.onnx")
    try:
        # Checking by path follows external weights (a .onnx.data file beside the model).
        onnx.checker.check_model(str(path))
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError, ValidationError, ...
        raise ModelLoadError(
            f"model.onnx: {path} is not a valid ONNX model: {_first_line(exc)}"
        ) from None
    io = IOSpec(_onnx_specs(proto.graph.input, proto), _onnx_specs(proto.graph.output, proto))
    feeds = example_inputs_for(io.inputs) if examples else {}
    feeds = kv_cache.zero_length_examples(feeds)  # causal LMs: a past of 0 tokens
    return ModelBundle(
        None, io, feeds, task, source={"kind": "onnx", "path": str(path)}, onnx_path=path
    )


def _onnx_specs(values, proto) -> list[TensorSpec]:
    import onnx

    initializers = {i.name for i in proto.graph.initializer}
    specs = []
    for value in values:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else (d.dim_param or f"d{i}")
            for i, d in enumerate(tensor_type.shape.dim)
        )
        specs.append(TensorSpec(value.name, dtype, shape))
    return specs


def load_hf(folder: Path, task: TaskSpec) -> ModelBundle:
    """A local transformers folder, offline. Sequence classifiers give logits, encoders give
    mean-pooled, L2-normalised sentence embeddings."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edgecompress.hf import load_hf_module

    if not (folder / "config.json").exists():
        raise ModelLoadError(f"model.hf: {folder} has no config.json (not a transformers folder)")
    module, tokenizer_dir, config = load_hf_module(folder)
    if tokenizer_dir is None:  # image classifiers: pixel_values in (hf/vision.py)
        from edgecompress.hf.vision import vision_bundle

        return vision_bundle(module, config, task, folder)
    from edgecompress.hf.text import text_parts

    task, family_extra = text_parts(config, task)  # classifiers: task, data, label names
    specs = [TensorSpec(n, "int64", ("batch", "sequence")) for n in module.input_names]
    io = IOSpec(specs, [])
    examples = tokenize(tokenizer_dir, EXAMPLE_TEXTS, io, task.max_length)
    io = IOSpec(specs, infer_outputs(module, specs, examples, [module.output_name]))
    extra = {"model_type": config.model_type, **family_extra}
    if hasattr(module, "lm_parts"):  # causal LMs: generation task, [batch, sequence, vocab]
        task, io, extra["generation"] = module.lm_parts(task, specs, config, tokenizer_dir)
    return ModelBundle(
        module,
        io,
        examples,
        task,
        source={"kind": "hf", "path": str(folder)},
        tokenizer_dir=tokenizer_dir,
        extra=extra,
    )


def load_path(
    path: Path, task: TaskSpec, factory: str | None = None, examples: bool = True
) -> ModelBundle:
    """Guess the loader from a path (CLI use): .onnx, .pt2, a HF folder, or weights + factory.
    ``examples=False``: an ONNX file's example inputs are not built."""
    if factory:
        return load_factory(factory, str(path), task)
    if path.is_dir():
        return load_hf(path, task)
    if path.suffix == ".onnx":
        return load_onnx(path, task, examples)
    if path.suffix == ".pt2":
        return load_pt2(path, task)
    if not path.exists():
        raise ModelLoadError(f"model: file not found: {path}")
    raise ModelLoadError(
        f"model: cannot tell how to load {path}: expected .onnx, .pt2, a Hugging Face folder, "
        "a recipe .yaml, or a state_dict with --factory pkg.module:function"
    )
