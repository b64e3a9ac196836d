"""Run a Cloud Functions / Cloud Run bundle for real before it ships: its requirements.txt
installed into a fresh venv of the runtime's Python (cached, see gcp.venv), the app served by
functions-framework on 127.0.0.1, and real HTTP requests: good ones compared with the model's
reference outputs, malformed ones (each must get a 400 naming the problem), and a concurrent
burst (every answer a 200 matching the reference). What could not be checked is said plainly.

Where no interpreter of the runtime's Python is on this host (PATH, pyenv), the check is
partial and labelled so: the app is served by the host's Python and its own packages
(functions-framework, onnxruntime, numpy), not the pinned set.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from edgecompress.awslambda import checks as lambda_checks
from edgecompress.awslambda.target import host_python, interpreter_for
from edgecompress.errors import ValidationError
from edgecompress.gcp import venv as gcp_venv
from edgecompress.gcp.server import AppServer
from edgecompress.gcp.target import MACHINE

BURST = 50
BURST_WORKERS = 50


def check_app(
    app_dir: Path,
    python: str,
    requirements: str,
    wheels: list[Path],
    reference,
    feeds,
    texts,
    threads: int = 8,
) -> dict:
    """Serve ``app_dir`` and send the requests; raise ValidationError when any answer is wrong."""
    interpreter = interpreter_for(MACHINE, python)
    if interpreter is not None:
        server_python, reused = gcp_venv.cached_venv(requirements, wheels, interpreter)
        env = {
            "mode": "full",
            "interpreter": interpreter,
            "venv": str(server_python.parent.parent),
            "venv_reused": reused,
            "installed": gcp_venv.freeze(server_python),
        }
    elif importlib.util.find_spec("functions_framework") is not None:
        server_python = Path(sys.executable)
        env = {
            "mode": "partial",
            "interpreter": sys.executable,
            "why": (
                f"no Python {python} on this host (PATH, pyenv): served by the host's Python "
                f"{host_python()} and its own packages, not the pinned requirements.txt"
            ),
        }
    else:
        return {
            "skipped": f"no Python {python} here and functions-framework is not installed "
            "for the host's Python (pip install 'edgecompress[gcp]')"
        }
    spec = json.loads((Path(app_dir) / "io_spec.json").read_text())
    with AppServer(app_dir, str(server_python), threads) as server:
        requests = _run_requests(server, spec, reference, feeds, texts)
        burst = _burst(server, _good_bodies(feeds, texts)[0][1], reference, spec["task"])
        cold = lambda_checks.cold_start_sample(server.init_timings(), server.ready_ms)
    failed = [r for r in requests if not r["passed"]] + ([burst] if not burst["passed"] else [])
    result = {
        "passed": not failed,
        **env,
        "server": "functions-framework (gunicorn) on 127.0.0.1",
        "requests": requests,
        "burst": burst,
        "cold_start": cold,
    }
    if failed:
        raise ValidationError(f"gcp self-check failed: {json.dumps(failed)[:1500]}")
    return result


def _good_bodies(feeds, texts) -> list[tuple[str, bytes]]:
    if texts is not None:
        return [("texts", json.dumps({"texts": texts}).encode())]
    lists = {"inputs": {k: v.tolist() for k, v in feeds.items()}}
    npy = {"inputs": {k: {"npy": lambda_checks.npy_b64(v)} for k, v in feeds.items()}}
    return [("nested lists", json.dumps(lists).encode()), ("base64 npy", json.dumps(npy).encode())]


def _body_of(event: dict) -> bytes:
    """The HTTP body a Lambda test event stands for (a proxy event's body, else the JSON)."""
    if "body" not in event:
        return json.dumps(event).encode()
    body = event["body"]
    return base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()


def _bad_bodies(spec: dict) -> list[tuple[str, bytes, str]]:
    """(label, body, word the 400's error must name): the Lambda self-check's malformed events
    sent as HTTP bodies, plus HTTP's own (an empty body, bytes that are not UTF-8)."""
    bad = lambda_checks.malformed_events(spec["inputs"], spec.get("allow_non_finite", False))
    return [(label, _body_of(event), word) for label, event, word in bad] + [
        ("empty body", b"", "JSON"),
        ("not UTF-8", b"\xff\xfe{", "UTF-8"),
    ]


def _run_requests(server: AppServer, spec, reference, feeds, texts) -> list[dict]:
    records = []
    good = _good_bodies(feeds, texts)
    plan = [(label, body, None) for label, body in good] + _bad_bodies(spec)
    plan.append(("good after bad", good[0][1], None))
    for label, body, word in plan:
        status, answer, seconds = server.post_json(body)
        record = {"request": label, "status": status, "ms": round(seconds * 1e3, 3)}
        if word is None:
            record.update(_compare(status, answer, reference, spec["task"]))
        else:
            error = str(answer.get("error", ""))
            record.update(
                {
                    "error": error,
                    "passed": status == 400
                    and word.lower() in error.lower()
                    and "Traceback" not in error,
                }
            )
        records.append(record)
    status, raw = server.request(b"", method="GET")
    records.append(
        {
            "request": "GET (not POST)",
            "status": status,
            "passed": status == 405,
            "error": json.loads(raw or b"{}").get("error"),
        }
    )
    return records


def _compare(status: int, answer: dict, reference, task: str) -> dict:
    if status != 200:
        return {"passed": False, "error": f"expected 200, got {status}: {str(answer)[:300]}"}
    return lambda_checks.compare(answer, reference or {}, task)


def _burst(server: AppServer, body: bytes, reference, task: str) -> dict:
    """BURST requests at once from a thread pool: every one a 200 matching the reference."""

    def one(_):
        status, answer, seconds = server.post_json(body, timeout=120)
        return seconds, _compare(status, answer, reference, task)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=BURST_WORKERS) as pool:
        results = list(pool.map(one, range(BURST)))
    wall = time.perf_counter() - start
    errors = [r for _, r in results if not r["passed"]]
    ms = sorted(s * 1e3 for s, _ in results)
    return {
        "passed": not errors,
        "requests": BURST,
        "workers": BURST_WORKERS,
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 3),
        "median_ms": round(statistics.median(ms), 3),
        "max_ms": round(ms[-1], 3),
        "server_threads": server.threads,
    }


def not_checked(docker: bool) -> list[str]:
    """What this self-check does not cover, said plainly."""
    items = ["the deploy itself (no Google Cloud access here)"]
    if docker:
        return [
            *items,
            "the Docker build: the base image cannot be pulled here (no registry "
            "access), so the image is not built; the app it would run is the one served "
            "above, from the same pinned requirements.txt",
        ]
    return [
        *items,
        "Google's build (buildpacks) installing requirements.txt on the runtime "
        "image; the same pinned set was installed and served here instead",
    ]
