"""One Runner API over torch, onnxruntime and LiteRT: ``run(feeds) -> outputs`` (numpy)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np

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


def open_runner(path: Path, threads: int = 1, io: IOSpec | None = None) -> Runner:
    """A runner for an exported file, chosen by its suffix."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxRunner(path, threads=threads, io=io)
    if path.suffix == ".tflite":
        return TFLiteRunner(path, threads=threads, io=io)
    raise ValueError(f"{path}: no runner for {path.suffix!r} files (expected .onnx or .tflite)")
