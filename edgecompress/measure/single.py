"""``compress bench`` on one file: a model (.onnx / .tflite) or a Lambda zip."""

from __future__ import annotations

import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from edgecompress.data import load_dataset, load_sentences
from edgecompress.errors import CompressError, DataError
from edgecompress.exporters.onnx import kv_cache
from edgecompress.iospec import IOSpec, TensorSpec
from edgecompress.loaders import load_onnx
from edgecompress.measure import coldstart, latency, memory
from edgecompress.measure.suite import default_event
from edgecompress.model import ModelBundle, TaskSpec, example_inputs_for
from edgecompress.runtimes import adapt_layout, open_runner


def file_io(path: Path) -> IOSpec:
    """The IO spec of an .onnx or .tflite file (int8 TFLite inputs are fed as float)."""
    if path.suffix == ".onnx":
        return load_onnx(path, TaskSpec()).io
    if path.suffix == ".tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=str(path))
        specs = []
        for i, d in enumerate(interp.get_input_details()):
            shape = tuple(
                int(s) if s > 0 else f"d{j}"
                for j, s in enumerate(d.get("shape_signature", d["shape"]))
            )
            shape = ("batch", *shape[1:]) if shape else shape
            specs.append(
                TensorSpec(
                    d["name"] or f"input_{i}",
                    "float32"
                    if np.dtype(d["dtype"]).kind in "iu" and d["quantization"][0]
                    else np.dtype(d["dtype"]).name,
                    shape,
                )
            )
        return IOSpec(specs, [])
    raise CompressError(
        f"{path}: cannot benchmark {path.suffix!r} files (expected .onnx, .tflite or a Lambda .zip)"
    )


def make_feeds(io: IOSpec, data: str | None, batch: int, seq_len: int | None, n: int = 32):
    """(feeds list, description): real samples of ``data`` (test split), or seeded random
    inputs of the right shape and dtype when no dataset is named."""
    if data is None:
        feeds = example_inputs_for(io.inputs, batch=batch, seq=seq_len or 16)
        feeds = kv_cache.zero_length_examples(feeds)  # causal LMs: the prefill, past of 0
        return [feeds], "synthetic random inputs (pass --data for real samples)"

    splits = load_dataset(data)
    if splits.test.texts is not None:
        raise DataError(
            f"--data {data}: text datasets need the model's tokenizer; benchmark "
            "text models through a recipe (compress run)"
        )
    spec = io.inputs[0]
    nchw = TensorSpec(spec.name, spec.dtype, ("batch", *splits.test.x.shape[1:]))
    bundle = ModelBundle(None, IOSpec([nchw], io.outputs), {}, TaskSpec(data=data))
    feeds = latency.feeds_from_split(bundle, splits.test, batch, n, seq_len)
    shapes = {s.name: s.shape for s in io.inputs}
    return [adapt_layout(f, shapes) for f in feeds], f"{data} test split"


def bench_model(
    path: Path,
    runs: int,
    warmup: int,
    threads: list[int],
    batch: int,
    seq_len: int | None,
    data: str | None,
    cold_runs: int,
) -> dict:
    io = file_io(path)
    feeds_list, inputs = make_feeds(io, data, batch, seq_len)
    by_threads = {}
    for t in threads:
        runner = open_runner(path, threads=t, io=io)
        summary = latency.measure_latency(
            runner, feeds_list, runs, warmup, label=f"{path.name} x{t}"
        )
        summary.pop("samples")
        by_threads[str(t)] = summary
    cold = coldstart.cold_start_model(path, feeds_list[0], cold_runs, threads=threads[0])
    return {
        "kind": "model",
        "path": str(path),
        "size_bytes": memory.file_size(path),
        "inputs": inputs,
        "latency_ms": by_threads,
        "cold_start_ms": cold,
        "peak_rss_mib": cold["peak_rss_mib"],
    }


def zip_event(
    zip_path: Path, event_file: Path | None, data: str | None, batch: int, seq_len: int | None
) -> tuple[dict, str]:
    """The event to send: --event, else the zip's sample_event.json, else inputs built from
    the model file inside the zip as ``{"inputs": {name: nested lists}}``."""

    if event_file is not None:
        return json.loads(Path(event_file).read_text()), str(event_file)
    with zipfile.ZipFile(zip_path) as zf, tempfile.TemporaryDirectory() as tmp:
        names = zf.namelist()
        if "sample_event.json" in names:
            return json.loads(zf.read("sample_event.json")), "sample_event.json in the zip"
        if "tokenizer.json" in names:  # a text model's handler takes texts
            texts = load_sentences().test.texts[:batch]
            return {"texts": texts}, "sentences (test split) as texts"
        models = [n for n in names if n.endswith((".onnx", ".tflite")) and "/" not in n]
        if not models:
            raise CompressError(
                f"{zip_path}: no sample_event.json and no top-level model "
                "file to build an event from; pass --event FILE.json"
            )
        model = Path(zf.extract(models[0], tmp))
        feeds_list, inputs = make_feeds(file_io(model), data, batch, seq_len)
    return default_event(feeds_list[0]), f"{inputs} via {models[0]}"


def bench_zip(
    zip_path: Path, runs: int, warmup: int, cold_runs: int, event: dict, event_source: str
) -> dict:
    cold = coldstart.cold_start_zip(zip_path, event, cold_runs)
    warm = latency.measure_zip_latency(zip_path, [event], runs, warmup)
    warm.pop("samples")
    return {
        "kind": "zip",
        "path": str(zip_path),
        **memory.zip_sizes(zip_path),
        "event": event_source,
        "cold_start_ms": cold,
        "latency_ms": {"handler": warm},
        "peak_rss_mib": cold["peak_rss_mib"],
    }
