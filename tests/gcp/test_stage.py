"""The pipeline's Google stage: a recipe's gcf bundle, then $ per million beside Lambda's in
report.json / report.md / report.html (from the variant's measured latency)."""

from __future__ import annotations

import shutil
import types

import pytest

from edgecompress.exporters.base import ExportedModel
from edgecompress.gcp import stage as gcp_stage
from edgecompress.model import TaskSpec
from edgecompress.recipe import parse_recipe
from edgecompress.report.report import new_report, write_report


def _report(variant_name: str) -> dict:
    latency = {"p50": 0.9, "p90": 1.0, "p95": 1.2, "p99": 1.5, "mean": 1.0, "min": 0.8, "max": 2}
    variant = {
        "name": variant_name, "format": "onnx", "size_bytes": 1000, "role": "candidate",
        "accuracy": {"metric": "accuracy", "value": 0.99, "baseline": 0.99, "delta": 0.0},
        "latency_ms": latency, "latency_by_threads": {"1": latency}, "cold_start_ms": 300.0,
        "cold_start": {"import_ms": 250.0, "load_ms": 20.0}, "zip": None,
        "cost": {"arch": "arm64", "memory_mb": 512, "usd_per_million": 0.25, "estimate": True},
        "cost_table": [{"arch": "arm64", "memory_mb": 512, "duration_ms": 3.5, "p95_ms": 4.2,
                        "billed_ms": 4, "usd_per_million": 0.25, "basis": "b"}],
    }  # fmt: skip
    return new_report([variant], [], name="t")


@pytest.mark.slow
def test_recipe_gcf_bundle_priced_beside_lambda(gcp_digits, gcf_digits, tmp_path):
    model, io = gcp_digits
    work = tmp_path / "work"
    work.mkdir()
    shutil.copyfile(model, work / "model.int8.onnx")
    variant = ExportedModel("onnx-int8", "onnx", work / "model.int8.onnx", "int8", io)
    recipe = parse_recipe({"model": {"onnx": str(model)}, "package": {
        "gcf": {"memory_mib": 512}, "lambda": {"arch": ["arm64"]}}})  # fmt: skip
    bundle = types.SimpleNamespace(task=TaskSpec(), tokenizer_dir=None)
    report = _report("onnx-int8")
    write_report(report, work)
    result = gcp_stage.package_and_price(recipe, bundle, work, [variant], {"report": report})
    (built,) = result["gcf"]
    assert built["path"] == "gcf-python312" and built["variant"] == "onnx-int8"
    assert built["self_check"]["passed"] and built["memory_mib"] == 512
    costs = result["report"]["variants"][0]["target_costs"]
    assert {r["target"] for r in costs["rows"]} == {"lambda-arm64", "gcf"}
    gcf_512 = next(r for r in costs["rows"] if r["target"] == "gcf" and r["memory_mb"] == 512)
    assert gcf_512["vcpu"] == 0.333 and gcf_512["billed_ms"] == 100  # 1 ms / 0.333 -> 100 ms
    assert costs["best"]["target"] == "lambda-arm64"  # $0.25 beats $0.40 a million requests
    md = (work / "report.md").read_text()
    assert "### Cost per million requests across targets (estimates)" in md
    assert "Cheapest for onnx-int8: **lambda-arm64** at 512 MB" in md
    assert md.count("| onnx-int8 | gcf |") == 1  # md: the cheapest of each target only
    assert "| onnx-int8 | gcf | 256 MB | 0.167 | 1 | 5.99 ms | 100 ms |" in md
    page = (work / "report.html").read_text()
    assert page.count("<td>gcf</td>") == 5  # html: every Cloud Functions row
    assert "not re-checked online" in page and result["report_md"] == md
