"""The Lambda self-check for an arm64 zip on an x86_64 host: the x86 self-check's events
(good ones, malformed ones that must get a 400, a good one again) sent to the unpacked zip
under awslambdaric, its interpreter run by qemu in a cached Debian arm64 root (emulate.py), and
the answers compared with the host's reference within a tolerance per scheme.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from edgecompress.awslambda import checks as lambda_checks
from edgecompress.awslambda.emulate import EMULATED_TIMEOUT_S, SYSFS_HIDE, Emulation
from edgecompress.awslambda.selfcheck import LocalFunction, ric_dir_for, task_env_ok, unzip
from edgecompress.errors import ValidationError

# The arm64 zip's outputs vs the host's (x86_64) reference, within atol * max(1, |ref|) or
# every row's cosine (classification labels must agree too). int8 kernels differ between the
# architectures: all-MiniLM-L6-v2 int8 dynamic, arm64 vs x86_64, max abs diff 4.9e-3, min
# cosine 0.99963 (int8-token 3.5e-3, 0.99977); digits int8: 4e-6 (benchmarks/results/
# lambda-arm64-emulated.md). Float: as the host self-check.
TOLERANCE = {
    "float": {"atol": 1e-3, "min_cosine": 0.999},
    "int8": {"atol": 1e-2, "min_cosine": 0.999},
}


def emulated_self_check(
    zip_path: Path,
    reference: dict,
    feeds: dict | None,
    texts: list[str] | None,
    memory_mb: int,
    emu: Emulation,
    scheme: str = "float",
) -> dict:
    """The x86 self-check's events, answered by the arm64 zip under qemu: good ones compared
    with the host's ``reference`` (``TOLERANCE[scheme]``), malformed ones must get a 400, and
    a good one after them must still be answered. Raises on failure."""
    tol = TOLERANCE["int8" if scheme == "int8" else "float"]
    try:
        spec, answers = run_events(zip_path, feeds, texts, memory_mb, emu)
    except ValidationError as exc:
        raise ValidationError(_explain(str(exc), emu)) from None
    events = judge(spec, answers, reference, tol)
    failed = [e for e in events if not e["passed"]]
    if failed:
        raise ValidationError(
            f"lambda emulated arm64 self-check failed: {json.dumps(failed)[:1500]}"
        )
    return {
        "passed": True,
        "events": events,
        "emulated": {**emu.to_dict(), "scheme": scheme, "tolerance": tol},
        "cold_start": {"note": "not measured under emulation (qemu timings mean nothing)"},
    }


def judge(spec: dict, answers: list, reference: dict, tol: dict) -> list[dict]:
    """One record per event: good answers compared with ``reference`` within ``tol``,
    malformed ones checked for a 400 naming the problem."""
    events = []
    for label, kind, answer, word in answers:
        record = {"event": label, "kind": kind}
        if word is None:
            outputs = lambda_checks._outputs_of(answer)
            record.update(lambda_checks.compare(outputs, reference, spec["task"], **tol))
        else:
            record.update(lambda_checks._check_400(answer, word))
        events.append(record)
    return events


def _explain(error: str, emu: Emulation) -> str:
    if emu.sysfs and "cpu/possible" in error:
        return (
            f"{error}\nUnder a Lambda-like sysfs (no {SYSFS_HIDE}/possible or present, as on "
            "Lambda arm64) this onnxruntime aborts at import: onnxruntime issue #10038, fixed "
            "by its PR #28230. On Lambda this zip would fail the same way; use a Python whose "
            "pinned onnxruntime has the fix (3.12+: 1.32), or x86_64."
        )
    return f"lambda emulated arm64 self-check: {error}"


def run_events(zip_path, feeds, texts, memory_mb, emu: Emulation | None, interpreter=None):
    """(io_spec, [(label, kind, answer, word or None)]): the self-check's good events, its
    malformed ones, then a good one again, sent to the unpacked zip under awslambdaric (the
    arm64 one under ``emu``, else ``interpreter``)."""
    with tempfile.TemporaryDirectory(prefix="ec-lambda-emu-") as tmp:
        root = unzip(zip_path, Path(tmp) / "task")
        task_env_ok(root)
        spec = json.loads((root / "io_spec.json").read_text())
        arch = spec.get("target", {}).get("arch") if emu else None
        ric = ric_dir_for(spec["target"]["python"], Path(tmp) / "runtime", arch)
        good = lambda_checks.good_events(feeds, texts)
        bad = lambda_checks.malformed_events(spec["inputs"], spec.get("allow_non_finite", False))
        plan = [(lb, ev, None) for lb, ev in good] + bad + [("good after bad", good[0][1], None)]
        options = {"command": emu.command(), "timeout_s": EMULATED_TIMEOUT_S} if emu else {}
        with LocalFunction(
            root, ric, memory_mb, python=spec["target"]["python"], log_dir=Path(tmp),
            interpreter=interpreter, **options,
        ) as fn:  # fmt: skip
            answers = [(lb, *fn.invoke(ev)[:2], word) for lb, ev, word in plan]
    return spec, answers
