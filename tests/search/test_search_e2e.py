"""``compress search`` end to end on the digits CNN: real ``compress run`` trials (each ~10 s
here), two workers on one storage, a failing trial, resuming, best.yaml run as is."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from edgecompress.cli.main import cli
from tests.conftest import DIGITS_WEIGHTS

TOL = "export[0].onnx.tolerance.fp32_max_abs_diff"
SCHEME = "export[0].onnx.quantize"


def tiny_recipe(tmp_path, gates=None, **search) -> str:
    """No compression step, one ONNX export, 20 latency runs, no Lambda zip: the cheapest
    real trial. fp32 with a 0.0 tolerance fails validation (exit 1 in that trial)."""
    data = {
        "name": "tiny",
        "model": {"factory": "edgecompress.zoo:digits_cnn", "weights": DIGITS_WEIGHTS},
        "task": {"kind": "classification", "data": "digits"},
        "export": [{"onnx": {"quantize": ["int8-dynamic"]}}],
        "bench": {"runs": 20, "warmup": 2, "threads": [1], "cold_start_runs": 1},
        "gates": gates or {"max_accuracy_drop": 0.05},
        "search": {"space": {SCHEME: ["int8-dynamic", "none"], TOL: [0.001, 0.0]}, **search},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def search(*args):
    return CliRunner().invoke(cli, ["search", *map(str, args)])


@pytest.mark.slow
def test_two_workers_one_storage_failing_trial_and_runnable_best(tmp_path):
    start = [{SCHEME: "none", TOL: 0.0}, {SCHEME: "int8-dynamic", TOL: 0.001}]
    recipe = tiny_recipe(tmp_path, start=start, seed=3)
    out = tmp_path / "out"
    result = search(recipe, "-o", out, "--trials", 4, "--workers", 2)
    assert result.exit_code == 0, result.output
    doc = json.loads((out / "trials.json").read_text())
    assert len(doc["trials"]) == 4 and {t["worker"] for t in doc["trials"]} == {0, 1}
    failing = doc["trials"][0]
    assert failing["state"] == "FAIL" and failing["status"] == "failed"
    assert "fp32 export failed validation" in failing["reason"]
    passed = [t for t in doc["trials"] if t["passed"]]
    assert passed and all(t["measurements"]["usd_per_million"] > 0.2 for t in passed)
    assert doc["best"] is not None and doc["pareto"]
    md = (out / "report.md").read_text()
    assert "### Pareto front (passed every gate)" in md and "| trial | $/1M (est.) |" in md
    assert (out / "trials" / "0001" / "run" / "report.json").is_file()

    rerun = CliRunner().invoke(cli, ["run", str(out / "best.yaml"), "-o", str(tmp_path / "b")])
    assert rerun.exit_code == 0, rerun.output
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["passed"] is True


@pytest.mark.slow
def test_rerun_with_more_trials_continues_the_study(tmp_path):
    recipe = tiny_recipe(tmp_path, start=[{SCHEME: "int8-dynamic", TOL: 0.001}], seed=1)
    out = tmp_path / "out"
    assert search(recipe, "-o", out, "--trials", 3).exit_code == 0
    first = json.loads((out / "trials.json").read_text())["trials"]
    logs = {p: p.stat().st_mtime_ns for p in out.glob("trials/*/log.txt")}
    again = search(recipe, "-o", out, "--trials", 5)
    assert again.exit_code == 0, again.output
    assert "3 of 5 trials done (resumed)" in again.output
    trials = json.loads((out / "trials.json").read_text())["trials"]
    assert [t["number"] for t in trials] == [0, 1, 2, 3, 4]
    assert [t["finished"] for t in trials[:3]] == [t["finished"] for t in first]
    assert {p: p.stat().st_mtime_ns for p in logs} == logs  # the first three never reran


@pytest.mark.slow
def test_no_trial_passing_exits_3(tmp_path):
    recipe = tiny_recipe(tmp_path, gates={"max_p95_ms": 1e-6}, start=[{TOL: 0.001}])
    result = search(recipe, "-o", tmp_path / "out", "--trials", 1)
    assert result.exit_code == 3, result.output
    assert "no trial passed every gate (1 trials); closest: trial 0" in result.output
    assert "max_p95_ms" in result.output
