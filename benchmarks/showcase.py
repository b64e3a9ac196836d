"""The showcase's Lambda and TFLite targets, measured in one run on this machine:

3. MiniLM-L6 int8, arm64 / Python 3.12 zip <= 50 MiB zipped; the host zip's cold start (fresh
   process to first answer) <= 1.0 s median.
4. digits-tflite: the int8 model >= 4x smaller than the original model's fp32 TFLite, test
   accuracy within 1 point of the original, the zip's self-check passes.

    python benchmarks/showcase.py [--cold-runs 5]

Runs recipes/minilm-lambda.yaml and recipes/digits-tflite.yaml with edgecompress's own pipeline,
then writes benchmarks/results/showcase-targets.md, quoting targets 1-2 from minilm-peers.md
(written by benchmarks/peers.py).
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MIB = 2**20


def run(recipe: str, out: Path):
    from edgecompress.errors import GateError
    from edgecompress.pipeline import run_recipe
    from edgecompress.recipe import load_recipe

    try:
        return run_recipe(load_recipe(ROOT / "recipes" / recipe), out).manifest
    except GateError:  # gates are reported below like every other number
        import json

        return json.loads((out / "manifest.json").read_text())


def original_fp32_tflite_bytes(work: Path) -> int:
    """Size of the original (uncompressed) digits CNN as an fp32 TFLite file."""
    from edgecompress.context import RunContext
    from edgecompress.data import load_digits
    from edgecompress.exporters.tflite.exporter import TFLiteConfig, export_tflite
    from edgecompress.loaders import load_factory
    from edgecompress.model import TaskSpec

    bundle = load_factory(
        "edgecompress.zoo:digits_cnn", "package://edgecompress.zoo/digits_cnn.pt", TaskSpec()
    )
    ctx = RunContext(load_digits(), work)
    ctx.set_baseline(bundle)
    (variant,) = export_tflite(bundle, TFLiteConfig(quantize=["none"]), ctx, work)
    return variant.size_bytes


def check(ok: bool) -> str:
    return "met" if ok else "NOT met"


def minilm_lines(manifest: dict, out: Path, cold_runs: int) -> list[str]:
    from edgecompress.measure.coldstart import cold_start_zip

    zips = {z["arch"]: z for z in manifest["lambda"]}
    arm, host = zips["arm64"], zips["x86_64"]
    cold = cold_start_zip(out / host["path"], {"texts": ["How big is this zip?"]}, cold_runs)
    arm_mib = arm["zipped_bytes"] / MIB
    first_answer = cold["process_ms"]
    return [
        "## 3. MiniLM-L6 int8 Lambda zips (recipes/minilm-lambda.yaml)",
        "",
        f"- arm64 / py{arm['python']} zip: {arm_mib:.2f} MiB zipped, "
        f"{arm['unzipped_bytes'] / MIB:.2f} MiB unzipped (target <= 50 MiB zipped): "
        f"{check(arm_mib <= 50)}; verified by wheel tags and ELF machines (no arm64 here)",
        f"- host zip x86_64 / py{host['python']}: {host['zipped_bytes'] / MIB:.2f} MiB zipped; "
        f"self-check {'passed' if host['self_check'].get('passed') else 'FAILED'} under "
        "awslambdaric",
        f"- host zip cold start, median of {cold_runs} fresh processes: process start to first "
        f"answer {first_answer:.0f} ms (target <= 1000 ms): {check(first_answer <= 1000)}; "
        f"import {cold['import_ms']:.0f} ms, session load {cold['load_ms']:.0f} ms, first "
        f"inference {cold['first_inference_ms']:.1f} ms",
        "",
    ]


def tflite_lines(manifest: dict, original_bytes: int) -> list[str]:
    variants = {v["name"]: v for v in manifest["variants"]}
    int8 = variants["tflite-int8-full"]
    metric = int8["validation"]["metric"]
    ratio = original_bytes / int8["size_bytes"]
    drop = metric["baseline"] - metric["value"]
    host = next(z for z in manifest["lambda"] if z["arch"] == "x86_64")
    steps = ", ".join(s["name"] for s in manifest["steps"])
    return [
        "## 4. digits-tflite (recipes/digits-tflite.yaml)",
        "",
        f"- steps: {steps}; exported as full-integer int8 TFLite",
        f"- size: original fp32 TFLite {original_bytes:,} B, int8 {int8['size_bytes']:,} B: "
        f"{ratio:.1f}x smaller (target >= 4x): {check(ratio >= 4)}",
        f"- test accuracy: original {metric['baseline']:.4f}, int8 TFLite {metric['value']:.4f}, "
        f"drop {drop * 100:.2f} points (target <= 1 point): {check(drop <= 0.01)}",
        f"- Lambda zip x86_64 / py{host['python']} (ai-edge-litert): "
        f"{host['zipped_bytes'] / MIB:.2f} MiB; self-check "
        f"{'passed' if host['self_check'].get('passed') else 'FAILED'}",
        "",
    ]


def peers_targets() -> list[str]:
    path = RESULTS / "minilm-peers.md"
    if not path.exists():
        return ["## 1-2. See benchmarks/peers.py (no minilm-peers.md yet)", ""]
    text = path.read_text()
    section = text.split("## Targets", 1)[1].split("\n## ", 1)[0]
    return ["## 1-2. From minilm-peers.md (benchmarks/peers.py)", "", "### Targets" + section]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-runs", type=int, default=5)
    args = parser.parse_args()
    from edgecompress.measure.machine import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        minilm = run("minilm-lambda.yaml", tmp / "minilm")
        lines_3 = minilm_lines(minilm, tmp / "minilm", args.cold_runs)
        digits = run("digits-tflite.yaml", tmp / "digits")
        lines_4 = tflite_lines(digits, original_fp32_tflite_bytes(tmp / "orig"))
    machine = machine_info()
    header = [
        "# Showcase targets, measured",
        "",
        f"- date: {datetime.date.today()}; machine: {machine.get('cpu')}, "
        f"{machine.get('cores')} cores, Python {platform.python_version()}",
        "",
    ]
    text = "\n".join(header + peers_targets() + lines_3 + lines_4)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "showcase-targets.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
