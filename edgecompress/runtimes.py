"""One Runner API over torch, onnxruntime and LiteRT: ``run(feeds) -> outputs`` (numpy), and
the layout adaptation between torch's NCHW feeds and files laid out NHWC (onnx2tf)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

from edgecompress.exporters.onnx import kv_cache
from edgecompress.iospec import IOSpec
from edgecompress.loaders import load_onnx
from edgecompress.model import ModelBundle, TaskSpec


class Runner(Protocol):
    io: IOSpec

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


def _eval_mode(module):
    """eval() where supported (torch.export's unlifted modules refuse it and need none)."""
    try:
        return module.eval()
    except NotImplementedError:
        return module


class TorchRunner:
    def __init__(self, module, io: IOSpec, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.module = _eval_mode(module)
        self.io = io

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.io.input_names]
            out = self.module(*args)
        outs = out if isinstance(out, tuple | list) else (out,)
        return {
            name: tensor.detach().float().numpy() if tensor.is_floating_point() else tensor.numpy()
            for name, tensor in zip(self.io.output_names, outs, strict=False)
        }


def torch_run(bundle: ModelBundle) -> Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """The bundle's torch module as a feeds -> outputs function."""
    return TorchRunner(bundle.module, bundle.io).run


class OnnxRunner:
    """onnxruntime on the CPU provider; ``threads`` sets intra-op threads (0 = ORT's default)."""

    def __init__(self, path: Path, threads: int = 0, io: IOSpec | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        if io is None:
            io = load_onnx(Path(path), TaskSpec()).io
        self.io = io
        self._names = [o.name for o in self.session.get_outputs()]

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = {i.name for i in self.session.get_inputs()}
        feeds = {**feeds, **kv_cache.empty_past(self.session, feeds)}  # causal LMs: no past
        outs = self.session.run(None, {k: v for k, v in feeds.items() if k in wanted})
        return dict(zip(self._names, outs, strict=True))


class TFLiteRunner:
    """ai-edge-litert's Interpreter. Quantized (int8/uint8) inputs are quantized with the
    file's scale and zero point, and quantized outputs dequantized, so feeds stay float."""

    def __init__(self, path: Path, threads: int | None = None, io: IOSpec | None = None):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 1)
        self.interpreter.allocate_tensors()
        self.io = io
        self._inputs = self.interpreter.get_input_details()
        self._outputs = self.interpreter.get_output_details()
        self._shapes: dict[int, tuple] = {}

    def _set_input(self, detail: dict, array: np.ndarray) -> None:
        scale, zero = detail["quantization"]
        if detail["dtype"] in (np.int8, np.uint8) and scale:
            info = np.iinfo(detail["dtype"])
            array = np.clip(np.round(array / scale + zero), info.min, info.max)
        array = np.ascontiguousarray(array, dtype=detail["dtype"])
        if self._shapes.get(detail["index"]) != array.shape:
            self.interpreter.resize_tensor_input(detail["index"], array.shape, strict=False)
            self.interpreter.allocate_tensors()
            self._shapes[detail["index"]] = array.shape
        self.interpreter.set_tensor(detail["index"], array)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        arrays = list(feeds.values())
        for i, detail in enumerate(self._inputs):
            key = _match_name(detail["name"], feeds)
            self._set_input(detail, feeds[key] if key else arrays[i])
        self.interpreter.invoke()
        result = {}
        names = self.io.output_names if self.io else []
        for i, detail in enumerate(self._outputs):
            out = self.interpreter.get_tensor(detail["index"])
            scale, zero = detail["quantization"]
            if detail["dtype"] in (np.int8, np.uint8) and scale:
                out = (out.astype(np.float32) - zero) * scale
            result[names[i] if i < len(names) else detail["name"]] = out
        return result


def _match_name(tflite_name: str, feeds: dict) -> str | None:
    """TFLite tensor names carry prefixes ("serving_default_image:0"): match by containment."""
    for key in feeds:
        if key == tflite_name or key in tflite_name:
            return key
    return None


# litert-torch files are static (batch 1, a fixed sequence length): rows are padded to them
PAD_VALUES = {"input_ids": 0, "attention_mask": 0, "token_type_ids": 0}


def pad_row(feeds: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """One batch-1 feed padded (or cut) to the file's static shapes."""
    out = {}
    for name, shape in shapes.items():
        array = np.asarray(feeds[name])
        if array.ndim == 2 and array.shape[1] != shape[1]:
            padded = np.full(shape, PAD_VALUES.get(name, 0), dtype=array.dtype)
            keep = min(shape[1], array.shape[1])
            padded[:, :keep] = array[:, :keep]
            array = padded
        out[name] = array
    return out


class RowRunner:
    """Runs a static batch-1 file over a batch: one row at a time, padded to its shapes."""

    def __init__(self, runner, shapes: dict[str, tuple]):
        self.runner, self.shapes = runner, shapes
        self.io = getattr(runner, "io", None)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(next(iter(feeds.values())))
        rows = [
            self.runner.run(pad_row({k: v[i : i + 1] for k, v in feeds.items()}, self.shapes))
            for i in range(n)
        ]
        return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def fixed_shapes(runner: TFLiteRunner) -> dict[str, tuple] | None:
    """The input shapes of a TFLite file with no dynamic dimension and batch 1 (litert-torch
    writes such files; they cannot be resized), keyed by the IO spec's names; else None."""
    details = runner.interpreter.get_input_details()
    sigs = [tuple(int(x) for x in d.get("shape_signature", d["shape"])) for d in details]
    if not sigs or any(min(s, default=1) <= 0 or s[:1] != (1,) for s in sigs):
        return None
    names = runner.io.input_names if runner.io else [d["name"] for d in details]
    return dict(zip(names, sigs, strict=False))


def open_runner(path: Path, threads: int = 1, io: IOSpec | None = None) -> Runner:
    """A runner for an exported file, chosen by its suffix."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxRunner(path, threads=threads, io=io)
    if path.suffix == ".tflite":
        runner = TFLiteRunner(path, threads=threads, io=io)
        fixed = fixed_shapes(runner)
        return RowRunner(runner, fixed) if fixed else runner
    raise ValueError(f"{path}: no runner for {path.suffix!r} files (expected .onnx or .tflite)")


def adapt_layout(feeds: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict:
    """Transpose 4-D NCHW feeds to NHWC where the file's input is NHWC (onnx2tf layouts).

    ``shapes`` maps input names to the file's shapes (ints fixed, anything else dynamic)."""
    out = {}
    for name, a in feeds.items():
        shape = shapes.get(name)
        if shape is not None and a.ndim == 4 and len(shape) == 4 and not _fits(a.shape, shape):
            moved = a.transpose(0, 2, 3, 1)
            if _fits(moved.shape, shape):
                a = np.ascontiguousarray(moved)
        out[name] = a
    return out


def _fits(actual: tuple, wanted: tuple) -> bool:
    return all(
        not isinstance(w, int) or w <= 0 or w == a for a, w in zip(actual, wanted, strict=False)
    )


class LayoutRunner:
    """A runner fed in torch's layout for a file whose inputs are laid out otherwise (NHWC
    after onnx2tf): an input is transposed by its permutation in ``perms`` (known when the
    file was converted), else as ``adapt_layout`` finds from the file's input ``shapes``."""

    def __init__(self, inner, perms: dict[str, tuple[int, ...]] | None = None, shapes=None):
        self.inner, self.perms, self.shapes = inner, dict(perms or {}), dict(shapes or {})
        self.io = getattr(inner, "io", None)

    def file_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` in the layout the file takes."""
        moved = {
            k: np.transpose(v, self.perms[k]) if k in self.perms else v for k, v in feeds.items()
        }
        return adapt_layout(moved, self.shapes) if self.shapes else moved

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.inner.run(self.file_feeds(feeds))


def open_layout_runner(path: Path, threads: int = 1, io: IOSpec | None = None) -> LayoutRunner:
    """``open_runner`` for a file, fed in torch's layout whatever layout its inputs have
    (``io``: the file's IO spec, its shapes telling the layout)."""
    shapes = {s.name: s.shape for s in io.inputs} if io else {}
    return LayoutRunner(open_runner(path, threads=threads, io=io), shapes=shapes)
