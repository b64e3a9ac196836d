"""Cold start: import, model load and first inference, each in a fresh process.

What the figures mean is defined once, in ``edgecompress.awslambda.checks.cold_start_sample``
(the Lambda self-check, earlier in the data flow, reports them too): ``total_ms`` = init
(import + load) + first inference, the serving code's own cold start; ``process_ms`` from the
start of the fresh process to its first answer; each the median over ``runs`` processes. Here
a stdlib-only probe (probe.py) runs in a plain interpreter: it works for bare model files and
for zips that use the host's packages, and it also reports peak RSS.

For a model file (.onnx / .tflite) the probe times ``import onnxruntime`` (or
``ai_edge_litert``) with numpy, session / interpreter creation, and the first run. For a Lambda
zip it unpacks the zip and times importing ``handler.py`` (``init_ms``: it loads the model at
module scope) and the first ``handler(event, None)``; a module-level dict ``INIT_TIMINGS`` with
``import_ms`` and ``load_ms`` breaks the init down, otherwise import + load are reported
together as ``init_ms``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from edgecompress.awslambda.checks import cold_start_sample, cold_start_summary
from edgecompress.awslambda.target import target_interpreter
from edgecompress.errors import CompressError
from edgecompress.progress import progress

PROBE = Path(__file__).with_name("probe.py")
MARKER = "@@PROBE@@"
_BOOT = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


def run_probe(
    args: dict, cwd: Path, timeout_s: float = 600, what: str = "", python: str | None = None
) -> dict:
    """Run probe.py once in a fresh interpreter (``python``, default ``sys.executable``); its
    JSON plus ``process_ms``: process start to its first answer."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "LAMBDA_TASK_ROOT": str(cwd)}
    cmd = [python or sys.executable, "-c", _BOOT, str(PROBE), json.dumps(args)]
    spawned = time.time()  # the probe stamps its first answer with the same (wall) clock
    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired:
        raise CompressError(
            f"{what}: benchmark process timed out after {timeout_s:.0f} s"
        ) from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER) and proc.returncode == 0:
            result = json.loads(line[len(MARKER) :])
            result["process_ms"] = (result.pop("answered_at") - spawned) * 1000.0
            return result
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    raise CompressError(f"{what}: benchmark process failed (exit {proc.returncode}): {tail}")


def _summarize(results: list[dict], keys: list[str]) -> dict:
    summary = cold_start_summary(results, keys)
    summary["per_run"] = [
        {k: round(r[k], 3) for k in keys if r.get(k) is not None} for r in results
    ]
    return summary


def model_format(path: Path) -> str:
    formats = {".onnx": "onnx", ".tflite": "tflite"}
    if path.suffix not in formats:
        raise CompressError(f"{path}: no cold-start probe for {path.suffix!r} (.onnx, .tflite)")
    return formats[path.suffix]


def cold_start_model(
    path: Path, feeds: dict[str, np.ndarray], runs: int = 5, threads: int = 1
) -> dict:
    """Median import / load / first-inference ms (and peak RSS) of ``path`` over ``runs``
    fresh processes."""
    path = Path(path).resolve()
    mode = model_format(path)
    keys = ["import_ms", "load_ms", "first_inference_ms", "total_ms", "process_ms", "peak_rss_mib"]
    with tempfile.TemporaryDirectory(prefix="ec-cold-") as tmp:
        np.savez(Path(tmp) / "feeds.npz", **feeds)
        args = {
            "mode": mode,
            "path": str(path),
            "feeds": str(Path(tmp) / "feeds.npz"),
            "threads": threads,
        }
        results = []
        with progress(f"cold start {path.name}", total=runs) as bar:
            for _ in range(runs):
                r = run_probe(args, Path(tmp), what=str(path))
                results.append(cold_start_sample(r))
                bar.advance()
    return _summarize(results, keys)


def unpack_zip(zip_path: Path, dest: Path) -> Path:
    try:
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(dest)
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise CompressError(f"{zip_path}: not a readable zip: {exc}") from None
    if not (dest / "handler.py").exists() and not list(dest.glob("*.py")):
        raise CompressError(f"{zip_path}: no handler .py at the zip's top level")
    return dest


def _interpreter_for_zip(root: Path, what: str) -> str:
    """The interpreter for an unpacked zip, from the target its io_spec.json records."""
    spec_path = root / "io_spec.json"
    target = json.loads(spec_path.read_text()).get("target", {}) if spec_path.exists() else {}
    python = target_interpreter(target.get("arch"), target.get("python"))
    if python is None:
        raise CompressError(
            f"{what}: built for {target.get('arch')} / Python {target.get('python')}; "
            "no such interpreter on this machine to run it"
        )
    return python


def run_zip_child(
    zip_path: Path,
    events: list[dict],
    runs: int = 0,
    warmup: int = 0,
    timeout_s: float = 600,
    handler: str = "handler.handler",
    unpacked: Path | None = None,
) -> dict:
    """One fresh process importing the zip's handler and calling it (1 + warmup + runs)."""
    with tempfile.TemporaryDirectory(prefix="ec-zip-") as tmp:
        root = unpacked or unpack_zip(Path(zip_path), Path(tmp) / "task")
        events_file = Path(tmp) / "events.json"
        events_file.write_text(json.dumps(events))
        args = {
            "mode": "zip",
            "dir": str(root),
            "events": str(events_file),
            "runs": runs,
            "warmup": warmup,
            "handler": handler,
        }
        python = _interpreter_for_zip(root, str(zip_path))
        return run_probe(args, root, timeout_s, what=str(zip_path), python=python)


def _zip_sample(r: dict) -> dict:
    """The cold start of one probe run: import and load from the handler's INIT_TIMINGS."""
    timings = r.get("init_timings") or {}
    if "import_ms" in timings and "load_ms" in timings:
        r = {**r, "import_ms": timings["import_ms"], "load_ms": timings["load_ms"]}
    return cold_start_sample(r)


def cold_start_zip(
    zip_path: Path, event: dict, runs: int = 5, handler: str = "handler.handler"
) -> dict:
    """Median init (import + load, broken down when the handler records ``INIT_TIMINGS``),
    first handler call, total (init + first call), process start to first answer and peak RSS
    over ``runs`` fresh processes."""
    zip_path = Path(zip_path)
    keys = [
        "init_ms",
        "import_ms",
        "load_ms",
        "first_inference_ms",
        "total_ms",
        "process_ms",
        "peak_rss_mib",
    ]
    with tempfile.TemporaryDirectory(prefix="ec-zipcold-") as tmp:
        root = unpack_zip(zip_path, Path(tmp) / "task")
        results = []
        with progress(f"cold start {zip_path.name}", total=runs) as bar:
            for _ in range(runs):
                r = run_zip_child(zip_path, [event], handler=handler, unpacked=root)
                results.append(_zip_sample(r))
                bar.advance()
    summary = _summarize(results, keys)
    summary["breakdown"] = summary["import_ms"] is not None and summary["load_ms"] is not None
    if not summary["breakdown"]:
        summary["note"] = "handler has no INIT_TIMINGS: import and load reported together"
    return summary
