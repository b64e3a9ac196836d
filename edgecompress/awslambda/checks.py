"""What the Lambda self-check sends and expects: good events (compared with reference
outputs), malformed events (each must get a 400 naming the problem), cold-start timings, and
the cross-target check (wheel tags, ELF machines) where the zip cannot run on this host.

Cold start is defined here, once (``cold_start_sample``, ``cold_start_summary``): the
self-check reports it, and edgecompress.measure (later in the data flow) reuses it for model
files and zips, so every report, CLI and benchmark figure means the same thing.
"""

from __future__ import annotations

import base64
import io
import json
import platform
import statistics
import tempfile
from pathlib import Path

import numpy as np

from edgecompress.awslambda.selfcheck import LocalFunction, ric_dir_for, task_env_ok, unzip
from edgecompress.awslambda.target import host_python, machine_of, target_interpreter
from edgecompress.awslambda.trim import elf_files, elf_machine
from edgecompress.awslambda.wheels import check_wheel_tags
from edgecompress.errors import ValidationError
from edgecompress.iospec import IOSpec
from edgecompress.model import tokenize
from edgecompress.runtimes import open_runner

DEFAULT_TEXTS = ["A small model answers quickly.", "Lambda functions start cold, then warm."]
TEN_MB = 10 * 1024 * 1024
COLD_START_KEYS = ("import_ms", "load_ms", "first_inference_ms", "total_ms", "process_ms")


def cold_start_sample(timings: dict, process_ms: float | None = None) -> dict:
    """One cold start of a fresh serving process, from its ``timings`` (ms; other figures are
    kept): ``total_ms`` = init + ``first_inference_ms``, the serving code's own cold start, where
    init is ``init_ms`` (importing the handler, timed from outside) or else ``import_ms`` (the
    libraries) + ``load_ms`` (the model); ``process_ms``, where given, runs from the start of
    the process to its first answer (the interpreter's and the runtime's own start included)."""
    sample = dict(timings)
    init = timings.get("init_ms")
    if init is None and "import_ms" in timings and "load_ms" in timings:
        init = timings["import_ms"] + timings["load_ms"]
    if init is not None and timings.get("first_inference_ms") is not None:
        sample["total_ms"] = init + timings["first_inference_ms"]
    if process_ms is not None:
        sample["process_ms"] = process_ms
    return sample


def cold_start_summary(samples: list[dict], keys=COLD_START_KEYS) -> dict:
    """Each figure's median over fresh processes (None where none had it), and ``runs``."""
    summary = {}
    for key in keys:
        values = [s[key] for s in samples if s.get(key) is not None]
        summary[key] = float(statistics.median(values)) if values else None
    return {**summary, "runs": len(samples)}


def sample_feeds_for(inputs: list[dict], seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Deterministic sample inputs for an IO spec (dynamic dims: batch first, 8 elsewhere)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [
            d if isinstance(d, int) else (batch if i == 0 else 8)
            for i, d in enumerate(spec["shape"])
        ]
        dtype = np.dtype(spec["dtype"])
        if spec.get("scale") is not None or dtype.kind == "f":
            feeds[spec["name"]] = rng.standard_normal(shape).astype(np.float32)
        else:
            feeds[spec["name"]] = np.ones(shape, dtype=dtype)
    return feeds


def npy_b64(array: np.ndarray) -> str:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return base64.b64encode(buf.getvalue()).decode()


def good_events(feeds: dict | None, texts: list[str] | None) -> list[tuple[str, dict]]:
    """A direct invoke with nested lists and a base64 proxy event with .npy tensors."""
    if texts is not None:
        request = {"texts": texts}
        return [
            ("direct texts", request),
            ("proxy texts", {"body": json.dumps(request), "isBase64Encoded": False}),
        ]
    direct = {"inputs": {k: v.tolist() for k, v in feeds.items()}}
    body = json.dumps({"inputs": {k: {"npy": npy_b64(v)} for k, v in feeds.items()}})
    proxy = {
        "version": "2.0",
        "rawPath": "/",
        "isBase64Encoded": True,
        "body": base64.b64encode(body.encode()).decode(),
        "requestContext": {"http": {"method": "POST"}},
    }
    return [("direct lists", direct), ("proxy base64 npy", proxy)]


def hostile_events(inputs: list[dict], others: dict, allow_non_finite: bool) -> list:
    """Events a hostile caller sends: nesting thousands deep, NaN in a float input."""
    first, deep = inputs[0], [0.0]
    for _ in range(200):  # deeper would exceed the JSON encoders on the way in
        deep = [deep]
    events = [("nested 200 deep", {"inputs": {first["name"]: deep, **others}}, "nested")]
    floats = first.get("scale") is not None or np.dtype(first["dtype"]).kind == "f"
    if floats and not allow_non_finite:
        shape = [d if isinstance(d, int) else 1 for d in first["shape"]]
        nan = {"inputs": {first["name"]: np.full(shape, np.nan).tolist(), **others}}
        events.append(("NaN input (proxy)", {"body": json.dumps(nan)}, "NaN"))
    return events


def malformed_events(inputs: list[dict], allow_non_finite: bool = False):
    """(label, event, word the 400's error must contain)."""
    first = inputs[0]
    shape = [d if isinstance(d, int) else 1 for d in first["shape"]]
    dtype = np.float32 if first.get("scale") is not None else np.dtype(first["dtype"])
    wrong_shape = np.zeros(shape[:-1] or [2, 2], dtype=dtype).tolist()
    others = {
        s["name"]: np.zeros([d if isinstance(d, int) else 1 for d in s["shape"]]).tolist()
        for s in inputs[1:]
    }
    wrong_npy = np.zeros(shape, dtype=np.float64 if first["dtype"] != "float64" else np.int32)
    return [
        ("wrong shape", {"inputs": {first["name"]: wrong_shape, **others}}, "dims"),
        ("wrong dtype (strings)", {"inputs": {first["name"]: [["a", "b"]], **others}}, "dtype"),
        (
            "wrong dtype (npy)",
            {"inputs": {first["name"]: {"npy": npy_b64(wrong_npy)}, **others}},
            "dtype",
        ),
        ("missing key", {"inputs": {}}, "missing"),
        ("missing 'inputs'", {"data": [1, 2, 3]}, "inputs"),
        ("non-JSON body", {"body": "{not json", "isBase64Encoded": False}, "JSON"),
        ("10 MB body", {"body": "x" * TEN_MB, "isBase64Encoded": False}, "too large"),
        *hostile_events(inputs, others, allow_non_finite),
    ]


def _outputs_of(answer) -> dict:
    if isinstance(answer, dict) and "statusCode" in answer:
        if answer["statusCode"] != 200:
            raise ValidationError(f"lambda self-check: a good event got {answer}"[:500])
        answer = json.loads(answer["body"])
    return answer


def compare(answer: dict, reference: dict, task: str, atol=1e-3, min_cosine=0.999) -> dict:
    """Per output: max abs diff and the smallest row cosine. An output passes when within
    ``atol * max(1, |ref|)`` everywhere, or when every row keeps cosine >= ``min_cosine`` (int8
    kernels differ slightly between onnxruntime versions); classification labels must agree."""
    got = answer.get("outputs", {})
    diffs, cosines, ok = {}, {}, True
    for name, ref in reference.items():
        ref = np.asarray(ref, dtype=np.float32)
        out = np.asarray(got.get(name, []), dtype=np.float32)
        if out.shape != ref.shape:
            return {"passed": False, "error": f"{name}: shape {out.shape} != {ref.shape}"}
        diffs[name] = float(np.abs(out - ref).max())
        cosines[name] = _min_cosine(out, ref)
        close = diffs[name] <= atol * max(1.0, float(np.abs(ref).max()))
        ok &= close or cosines[name] >= min_cosine
    if task == "classification" and reference:
        ref_labels = np.argmax(np.asarray(next(iter(reference.values()))), axis=-1).tolist()
        ok &= answer.get("labels") == ref_labels
    return {"passed": bool(ok), "max_abs_diff": diffs, "min_cosine": cosines}


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    rows = a.shape[0] if a.ndim > 1 else 1
    a, b = a.reshape(rows, -1), b.reshape(rows, -1)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cos = np.where(den > 0, num / np.maximum(den, 1e-30), 1.0)
    return float(cos.min())


def self_check(
    zip_path: Path,
    reference: dict | None,
    feeds: dict | None,
    texts: list[str] | None,
    memory_mb: int,
    python: str,
    interpreter: str | None = None,
) -> dict:
    """Unzip, run under awslambdaric with an interpreter of the target Python, send good and
    malformed events; raise on failure."""
    with tempfile.TemporaryDirectory(prefix="ec-lambda-check-") as tmp:
        root = unzip(zip_path, Path(tmp) / "task")
        task_env_ok(root)
        spec = json.loads((root / "io_spec.json").read_text())
        ric = ric_dir_for(python, Path(tmp) / "runtime")
        with LocalFunction(
            root, ric, memory_mb, python=python, log_dir=Path(tmp), interpreter=interpreter
        ) as fn:
            events, answers = _run_events(fn, spec, reference, feeds, texts)
            cold = cold_start_sample(fn.init_timings(), answers[0]["seconds"] * 1e3)
    failed = [e for e in events if not e["passed"]]
    result = {"passed": not failed, "events": events, "answers": answers, "cold_start": cold}
    if failed:
        raise ValidationError(f"lambda self-check failed: {json.dumps(failed)[:1500]}")
    return result


def _run_events(fn, spec, reference, feeds, texts):
    events, answers = [], []
    good = good_events(feeds, texts)
    bad = malformed_events(spec["inputs"], spec.get("allow_non_finite", False))
    plan = [(label, ev, None) for label, ev in good] + bad + [("good after bad", good[0][1], None)]
    for label, event, word in plan:
        kind, answer, seconds = fn.invoke(event)
        record = {"event": label, "kind": kind}
        if word is None:
            record.update(compare(_outputs_of(answer), reference or {}, spec["task"]))
            answers.append(
                {"event": label, "seconds": seconds, "labels": _outputs_of(answer).get("labels")}
            )
        else:
            record.update(_check_400(answer, word))
        events.append(record)
    return events, answers


def _check_400(answer, word: str) -> dict:
    if not isinstance(answer, dict) or answer.get("statusCode") != 400:
        return {"passed": False, "error": f"expected a 400 answer, got {str(answer)[:300]}"}
    error = json.loads(answer["body"]).get("error", "")
    ok = word.lower() in error.lower() and "Traceback" not in answer["body"]
    return {"passed": ok, "status": 400, "error": error}


def measure_cold_start(zip_path: Path, runs: int = 5, memory_mb: int = 1024) -> dict:
    """The zip's cold start (``cold_start_sample``) under awslambdaric, median over ``runs``
    fresh processes: import, load (session), first inference, total, and process start to
    first answer (``process_ms``), in ms."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="ec-lambda-cold-") as tmp:
        root = unzip(zip_path, Path(tmp) / "task")
        spec = json.loads((root / "io_spec.json").read_text())
        python, interpreter = _interpreter(spec, zip_path)
        ric = ric_dir_for(python, Path(tmp) / "runtime")
        texts = DEFAULT_TEXTS if spec.get("text") else None
        feeds = None if texts else sample_feeds_for(spec["inputs"], batch=1)
        event = good_events(feeds, texts)[0][1]
        for _ in range(runs):
            with LocalFunction(
                root, ric, memory_mb, python=python, log_dir=Path(tmp), interpreter=interpreter
            ) as fn:
                _kind, answer, seconds = fn.invoke(event)
                _outputs_of(answer)
                samples.append(cold_start_sample(fn.init_timings(), seconds * 1e3))
    return {**cold_start_summary(samples), "samples": samples, "memory_mb": memory_mb}


def _interpreter(spec: dict, zip_path: Path) -> tuple[str, str]:
    """(python, interpreter) for the zip's target (this host's where it records none), or a
    clear error when no such interpreter is here."""
    target = spec.get("target") or {}
    python = str(target.get("python") or host_python())
    interpreter = target_interpreter(target.get("arch"), python)
    if interpreter is None:
        machine = machine_of(target["arch"]) if target.get("arch") else platform.machine()
        raise ValidationError(
            f"lambda cold start: {zip_path.name} targets {machine} Python {python}; "
            f"this host ({platform.machine()}) has no such interpreter (PATH, pyenv)"
        )
    return python, interpreter


def verify_target(stage: Path, wheels: list, target) -> dict:
    """Every wheel's tags and every ELF file's e_machine must fit the target."""

    problems = [m for w in wheels if (m := check_wheel_tags(w, target))]
    elfs = elf_files(stage)
    problems += [
        f"{p.relative_to(stage)}: ELF e_machine {elf_machine(p)} != "
        f"{target.elf_machine} ({target.machine})"
        for p in elfs
        if elf_machine(p) != target.elf_machine
    ]
    if problems:
        raise ValidationError(
            "lambda: files that cannot run on " + target.key + ": " + "; ".join(problems[:10])
        )
    return {
        "wheels": [w.to_dict() for w in wheels],
        "elf": {"files": len(elfs), "e_machine": target.elf_machine, "machine": target.machine},
        "platforms_accepted": target.platforms(),
    }


def host_reference(
    model_path: Path,
    spec: dict,
    feeds: dict | None,
    texts: list[str] | None,
    tokenizer_dir: Path | None,
) -> dict:
    """Reference outputs from the host's own runtime, on the inputs the self-check sends
    (texts tokenized as the handler does: the zip's max_length and pad token)."""
    io = IOSpec.from_dict(spec)
    if texts is not None:
        text = spec["text"]
        feeds = tokenize(
            tokenizer_dir,
            texts,
            io,
            int(text["max_length"]),
            pad_id=int(text["pad_id"]),
            pad_token=text["pad_token"],
        )
    runner = open_runner(Path(model_path), threads=1, io=io)
    outputs = runner.run({k: np.asarray(v) for k, v in feeds.items()})
    return {name: np.asarray(outputs[name]) for name in (t["name"] for t in spec["outputs"])}
