"""Causal LMs in a Lambda zip: generate.py beside the handler, the generation settings in
io_spec.json, and the self-check that sends real prompts.

The zip answers ``{"prompt": "...", "max_new_tokens": N}`` with greedy decoding (the handler
hands such requests to generate.py; with the file's KV cache when it has past inputs); N above
``max_new_tokens`` (LambdaTarget, default 64) gets a 400 naming the bound. The self-check
compares the zip's generated token ids with the same loop run here on the host's onnxruntime,
and sends bad prompts that must get a 400.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

from edgecompress.awslambda.checks import TEN_MB, cold_start_sample
from edgecompress.awslambda.selfcheck import LocalFunction, ric_dir_for, task_env_ok, unzip
from edgecompress.errors import ExportError, ValidationError
from edgecompress.iospec import IOSpec
from edgecompress.model import TaskKind
from edgecompress.runtimes import open_runner

TEMPLATE = "edgecompress.awslambda.templates.generate"  # copied beside handler.py
TEMPLATE_FILE = Path(__file__).parent / "templates" / (TEMPLATE.rsplit(".", 1)[1] + ".py")
PROMPTS = ["The function returns", "A small model answers"]
DEFAULT_NEW_TOKENS = 16


def is_generation(facts: dict, task) -> bool:
    """A causal LM: stamped so by the exporter, or packaged with the generation task."""
    kind = getattr(task, "kind", None)
    return bool(facts.get("generation")) or kind in (TaskKind.generation, "generation")


def serving(
    stage: Path, facts: dict, task, max_new_tokens: int, text: dict | None, inputs=None
) -> dict:
    """io_spec.json's task and ``generation`` section (and generate.py in ``stage``) for a
    causal LM; {} for any other model. ``inputs`` (io_spec.json's) tell whether the file has a
    KV cache (generate.py decides from the same list at run time)."""
    if not is_generation(facts, task):
        return {}
    if text is None:
        raise ExportError(
            "lambda: a causal LM needs its tokenizer: pass --tokenizer DIR (the model folder, "
            "or any folder with its tokenizer.json)"
        )
    shutil.copyfile(TEMPLATE_FILE, stage / TEMPLATE_FILE.name)
    settings = dict(facts.get("generation") or {})
    settings.update(
        max_new_tokens=int(max_new_tokens),
        default_max_new_tokens=min(DEFAULT_NEW_TOKENS, int(max_new_tokens)),
        cache=any(s["name"].startswith("past_key_values.") for s in inputs or []),
    )
    return {"task": "generation", "generation": settings}


def load_template():
    """generate.py as a module (the very code the zip runs)."""
    spec = importlib.util.spec_from_file_location("edgecompress_generate", TEMPLATE_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def host_answers(model_path: Path, spec: dict, tokenizer_dir: Path, requests) -> list[dict]:
    """What generate.py answers on this host's onnxruntime for each request."""
    generate = load_template()
    runner = open_runner(Path(model_path), threads=1, io=IOSpec.from_dict(spec))
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copyfile(Path(tokenizer_dir) / "tokenizer.json", Path(tmp) / "tokenizer.json")
        return [generate.answer(r, runner.run, tmp, spec) for r in requests]


def events(spec: dict) -> tuple[list, list]:
    """(good requests with their events, bad events with the word their 400 must name)."""
    bound = spec["generation"]["max_new_tokens"]
    first = {"prompt": PROMPTS[0], "max_new_tokens": min(8, bound)}
    second = {"prompt": PROMPTS[1], "max_new_tokens": min(5, bound)}
    good = [
        ("direct prompt", first, first),
        ("proxy prompt", second, {"body": json.dumps(second), "isBase64Encoded": False}),
        ("default max_new_tokens", {"prompt": PROMPTS[0]}, {"prompt": PROMPTS[0]}),
    ]
    bad = [
        (f"max_new_tokens {bound + 1}", {"prompt": "Hi", "max_new_tokens": bound + 1}, str(bound)),
        ("max_new_tokens not a number", {"prompt": "Hi", "max_new_tokens": "8"}, "integer"),
        ("prompt not a string", {"prompt": 42}, "prompt"),
        ("non-JSON body", {"body": "{not json", "isBase64Encoded": False}, "JSON"),
        ("10 MB body", {"body": "x" * TEN_MB, "isBase64Encoded": False}, "too large"),
    ]
    return good, bad


def self_check(zip_path, model_path, spec, tokenizer_dir, memory_mb, python, interpreter):
    """Run the zip under awslambdaric: prompts (token ids equal to the host's), bad prompts
    (400 naming the problem), then a prompt again; raise ValidationError on a failure."""
    good, bad = events(spec)
    expected = host_answers(model_path, spec, tokenizer_dir, [g[1] for g in good])
    plan = [(label, ev, want, None) for (label, _, ev), want in zip(good, expected, strict=True)]
    plan += [(label, ev, None, word) for label, ev, word in bad]
    plan.append(("prompt after bad ones", good[0][2], expected[0], None))
    with tempfile.TemporaryDirectory(prefix="ec-lambda-lm-") as tmp:
        root = unzip(zip_path, Path(tmp) / "task")
        task_env_ok(root)
        ric = ric_dir_for(python, Path(tmp) / "runtime")
        with LocalFunction(
            root, ric, memory_mb, python=python, log_dir=Path(tmp), interpreter=interpreter
        ) as fn:
            records = [_record(fn, label, ev, want, word) for label, ev, want, word in plan]
            cold = cold_start_sample(fn.init_timings(), records[0].pop("seconds") * 1e3)
    failed = [r for r in records if not r["passed"]]
    if failed:
        raise ValidationError(f"lambda self-check (generation) failed: {json.dumps(failed)[:1500]}")
    answers = [{"event": r["event"], "text": r.get("text")} for r in records if "text" in r]
    return {"passed": True, "events": records, "answers": answers, "cold_start": cold}


def _record(fn, label: str, event: dict, want: dict | None, word: str | None) -> dict:
    kind, answer, seconds = fn.invoke(event)
    record = {"event": label, "kind": kind, "seconds": seconds}
    status = answer.get("statusCode", 200) if isinstance(answer, dict) else None
    body = answer
    if isinstance(answer, dict) and "statusCode" in answer:
        body = json.loads(answer.get("body") or "null")
    if word is not None:
        error = body.get("error", "") if isinstance(body, dict) else ""
        record.update(status=status, error=error, passed=status == 400 and word in error)
        return record
    got = body.get("token_ids") if isinstance(body, dict) and status == 200 else None
    record.update(
        status=status,
        text=body.get("text") if isinstance(body, dict) else None,
        token_ids=got,
        expected_token_ids=want["token_ids"],
        passed=got == want["token_ids"],
    )
    return record
