"""The study around the trials, with a stand-in for ``compress run`` (fast): failed trials are
recorded and never fatal, resuming continues the count, no passing trial exits 3, OUT rules,
stale trials, duplicates. tests/search/test_search_e2e.py runs the real thing."""

from __future__ import annotations

import json
import os
import time

import pytest
import yaml
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.search import study as study_mod
from edgecompress.search import trial as trial_mod
from edgecompress.search.storage import open_storage, resolve_storage
from tests.conftest import DIGITS_WEIGHTS

# What the stand-in "measures" per ONNX scheme: ($/M, accuracy drop) or the error it fails with.
FAKE = {
    "none": (0.30, 0.0),
    "int8-dynamic": (0.25, 0.01),
    "int8-static": (0.20, 0.05),
    "fp16": "fp16 export failed validation: max_abs_diff 0.1 > allowed 0.05",
}


def recipe_file(tmp_path, schemes, gate=0.02, sampler="grid", name="r.yaml"):
    data = {
        "name": "fake",
        "model": {"factory": "edgecompress.zoo:digits_cnn", "weights": DIGITS_WEIGHTS},
        "task": {"kind": "classification", "data": "digits"},
        "export": [{"onnx": {"quantize": ["none"]}}],
        "gates": {"max_accuracy_drop": gate},
        "search": {"space": {"export[0].onnx.quantize": schemes}, "sampler": sampler},
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def calls(monkeypatch):
    """Replace ``compress run`` with a table lookup; returns the trial folders it ran."""
    ran = []

    def fake_execute(recipe, run_dir, timeout_s=None):
        ran.append(recipe.parent.name)
        scheme = yaml.safe_load(recipe.read_text())["export"][0]["onnx"]["quantize"][0]
        result = FAKE[scheme]
        if isinstance(result, str):
            return trial_mod.Outcome("failed", result, seconds=0.1, exit_code=1)
        usd, drop = result
        limit = yaml.safe_load(recipe.read_text())["gates"]["max_accuracy_drop"]
        gates = [{"name": f"max_accuracy_drop: onnx-{scheme}", "gate": "max_accuracy_drop",
                  "limit": limit, "value": drop, "passed": drop <= limit, "unit": ""}]  # fmt: skip
        report = {
            "variants": [
                {"name": f"onnx-{scheme}", "role": "candidate", "format": "onnx",
                 "size_bytes": 1000, "latency_ms": {"p95": 0.1, "p50": 0.05},
                 "accuracy": {"metric": "accuracy", "value": 0.99 - drop, "baseline": 0.99,
                              "delta": -drop},
                 "cost": {"usd_per_million": usd, "memory_mb": 512, "arch": "arm64"}}
            ],
        }  # fmt: skip
        run_dir.mkdir(parents=True)
        manifest = {"tool": {"name": "edgecompress"}, "report": report, "gates": gates}
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
        return trial_mod.read_outcome(run_dir, 0.1)

    monkeypatch.setattr(trial_mod, "execute", fake_execute)
    return ran


def search(*args):
    return CliRunner().invoke(cli, ["search", *map(str, args)])


def trials_json(out):
    return json.loads((out / "trials.json").read_text())


def test_failed_trials_are_recorded_and_the_cheapest_passing_one_wins(tmp_path, calls):
    recipe = recipe_file(tmp_path, ["none", "int8-dynamic", "int8-static", "fp16"])
    out = tmp_path / "out"
    result = search(recipe, "-o", out, "--trials", 4)
    assert result.exit_code == 0, result.output
    doc = trials_json(out)
    by_scheme = {t["values"]["export[0].onnx.quantize"]: t for t in doc["trials"]}
    assert {s: (t["state"], t["status"]) for s, t in by_scheme.items()} == {
        "none": ("COMPLETE", "passed"),
        "int8-dynamic": ("COMPLETE", "passed"),
        "int8-static": ("COMPLETE", "gate_failed"),  # measured, infeasible: guides the sampler
        "fp16": ("FAIL", "failed"),
    }
    assert "fp16 export failed validation" in by_scheme["fp16"]["reason"]
    assert (
        "max_accuracy_drop: onnx-int8-static: 0.05 > limit 0.02"
        in (by_scheme["int8-static"]["reason"])
    )
    assert by_scheme["int8-static"]["constraints"] == [pytest.approx(1.5)]
    assert doc["best"] == by_scheme["int8-dynamic"]["number"]  # int8-static is cheaper: failed
    assert sorted(doc["pareto"]) == sorted(
        [by_scheme["none"]["number"], by_scheme["int8-dynamic"]["number"]]
    )
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["export"] == [{"onnx": {"quantize": ["int8-dynamic"]}}]
    assert "search" not in best and best["relative_to"] == str(tmp_path.resolve())
    md = (out / "report.md").read_text()
    assert "### Pareto front (passed every gate)" in md and "### All trials" in md
    assert "fp16 export failed validation" in md
    assert '<img alt="pareto plot"' in (out / "report.html").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "search" and set(manifest["files"]) >= {"trials.json"}


def test_rerun_continues_the_count_without_rerunning(tmp_path, calls):
    recipe = recipe_file(tmp_path, ["none", "int8-dynamic", "int8-static", "fp16"])
    out = tmp_path / "out"
    assert search(recipe, "-o", out, "--trials", 2).exit_code == 0
    assert calls == ["0000", "0001"]
    first = {t["number"]: t for t in trials_json(out)["trials"]}
    again = search(recipe, "-o", out, "--trials", 4)
    assert again.exit_code == 0, again.output
    assert calls == ["0000", "0001", "0002", "0003"]
    doc = trials_json(out)
    assert [t["number"] for t in doc["trials"]] == [0, 1, 2, 3]
    for n in (0, 1):
        assert doc["trials"][n]["finished"] == first[n]["finished"]
    assert search(recipe, "-o", out, "--trials", 4).exit_code == 0  # nothing left: no new run
    assert len(calls) == 4


def test_same_values_are_not_run_twice(tmp_path, calls):
    recipe = recipe_file(tmp_path, ["int8-dynamic"], sampler="random")
    out = tmp_path / "out"
    assert search(recipe, "-o", out, "--trials", 3).exit_code == 0
    assert calls == ["0000"]
    assert [t["duplicate_of"] for t in trials_json(out)["trials"]] == [None, 0, 0]


def test_no_passing_trial_exits_3_naming_the_closest(tmp_path, calls):
    recipe = recipe_file(tmp_path, ["int8-static", "int8-dynamic"], gate=0.001)
    out = tmp_path / "out"
    result = search(recipe, "-o", out, "--trials", 2)
    assert result.exit_code == 3, result.output
    assert "no trial passed every gate (2 trials); closest: trial 1" in result.output
    assert "max_accuracy_drop: onnx-int8-dynamic: 0.01 > limit 0.001" in result.output
    assert not (out / "best.yaml").exists()
    assert trials_json(out)["closest"] == 1
    assert "**No trial passed every gate.** Closest: trial 1" in (out / "report.md").read_text()


def test_every_trial_failing_exits_1(tmp_path, calls):
    result = search(recipe_file(tmp_path, ["fp16"]), "-o", tmp_path / "o", "--trials", 2)
    assert result.exit_code == 1, result.output
    assert "no trial was measured" in result.output and "fp16 export failed" in result.output


def test_out_is_resumed_only_for_the_same_recipe(tmp_path, calls):
    recipe = recipe_file(tmp_path, ["none", "int8-dynamic"])
    other = recipe_file(tmp_path, ["none", "fp16"], name="other.yaml")
    out = tmp_path / "out"
    assert search(recipe, "-o", out, "--trials", 1).exit_code == 0
    refused = search(other, "-o", out, "--trials", 1)
    assert refused.exit_code == 2 and "holds a search of another recipe" in refused.output
    forced = search(other, "-o", out, "--trials", 1, "--force")
    assert forced.exit_code == 0, forced.output
    assert [t["values"] for t in trials_json(out)["trials"]] == [
        {"export[0].onnx.quantize": "none"}
    ]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = search(recipe, "-o", tmp_path / "mine", "--trials", 1)
    assert result.exit_code == 2 and "not a search output" in result.output
    assert search(recipe, "-o", tmp_path / "mine", "--force").exit_code == 2  # not ours
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_stale_running_trials_are_retried(tmp_path):
    import optuna

    study_mod.quiet_optuna()
    spec = resolve_storage(None, tmp_path)
    study = optuna.create_study(storage=open_storage(spec), study_name="s")
    dead = study.ask()
    dead.suggest_categorical("x", ["a", "b"])
    dead.set_user_attr("host", "this-host")
    dead.set_user_attr("pid", 2**22 + 12345)  # above pid_max: no such process
    dead.set_user_attr("heartbeat", time.time())
    alive = study.ask()
    alive.set_user_attr("host", "this-host")
    alive.set_user_attr("pid", os.getpid())
    alive.set_user_attr("heartbeat", time.time())
    silent = study.ask()  # another machine's trial, no heartbeat for 10 minutes
    silent.suggest_categorical("x", ["a", "b"])
    silent.set_user_attr("host", "elsewhere")
    silent.set_user_attr("heartbeat", time.time() - 600)
    assert study_mod.sweep_stale(study, host="this-host") == [dead.number, silent.number]
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "RUNNING", "FAIL", "WAITING", "WAITING"]
    assert trials[0].user_attrs["status"] == "interrupted"
    assert trials[3].system_attrs["fixed_params"] == trials[0].params
    assert trials[3].user_attrs["retry_of"] == 0
    assert study_mod.counted(trials) == 1  # interrupted and queued trials do not count


def test_a_trial_past_its_timeout_is_stopped(tmp_path, monkeypatch):
    monkeypatch.setattr(trial_mod, "LAUNCH", "import time; time.sleep(60)")
    recipe = tmp_path / "t" / "recipe.yaml"
    recipe.parent.mkdir()
    recipe.write_text("{}")
    start = time.perf_counter()
    outcome = trial_mod.execute(recipe, tmp_path / "t" / "run", timeout_s=1.0)
    assert outcome.status == "timeout" and "stopped after 1 s" in outcome.reason
    assert time.perf_counter() - start < 20


def test_storage_urls(tmp_path):
    assert resolve_storage(None, tmp_path).url == str(tmp_path.resolve() / "study.journal")
    shared = resolve_storage(str(tmp_path / "shared.journal"), tmp_path / "o")
    assert shared.kind == "journal" and shared.lock_base.endswith("shared.journal")
    pg = resolve_storage("postgresql://me:secret@db/optuna", tmp_path)
    assert pg.kind == "rdb" and pg.shown == "postgresql://me:***@db/optuna"
    from edgecompress.errors import RecipeError

    with pytest.raises(RecipeError, match="unknown scheme 'redis'"):
        resolve_storage("redis://x", tmp_path)


@pytest.mark.parametrize("storage", [None, "sqlite"])
def test_parallel_workers_stop_at_exactly_n_trials(tmp_path, calls, storage):
    """Workers racing on one storage (threads here; processes and machines take the same
    file lock) start exactly --trials trials."""
    import threading

    from edgecompress.recipe import load_recipe, read_yaml
    from edgecompress.search.runner import fingerprint

    path = recipe_file(tmp_path, ["none", "int8-dynamic", "int8-static", "fp16"], sampler="random")
    recipe, data = load_recipe(path), read_yaml(path)
    url = f"sqlite:///{tmp_path / 'study.db'}" if storage else None
    spec = resolve_storage(url, tmp_path / "out")
    job = study_mod.Job(data, str(path), str(tmp_path), str(tmp_path / "out"), spec, "s", 7, None)
    study_mod.open_study(job, recipe, fingerprint(data))
    workers = [study_mod.Worker(job, i) for i in range(3)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    trials = workers[0].study.get_trials()
    assert len(trials) == 7 and study_mod.counted(trials) == 7
    assert {t.user_attrs["worker"] for t in trials} <= {0, 1, 2}


def test_contradicting_values_are_pruned_not_fatal(tmp_path, calls):
    path = recipe_file(tmp_path, ["none", "int8-dynamic"])
    data = yaml.safe_load(path.read_text())
    data["search"]["space"]["export"] = [[{"onnx": {}}], ["tflite"]]
    path.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    result = search(path, "-o", out, "--trials", 4)
    assert result.exit_code == 0, result.output
    trials = trials_json(out)["trials"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert len(pruned) == 2 and len(calls) == 2
    assert all(t["status"] == "invalid" for t in pruned)
    assert "export[0] is 'tflite', not 'onnx'" in pruned[0]["reason"]


def test_json_output_is_one_document(tmp_path, calls):
    recipe = recipe_file(tmp_path, ["none", "int8-dynamic"])
    result = CliRunner().invoke(
        cli, ["search", str(recipe), "-o", str(tmp_path / "o"), "--trials", "2", "--json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["best"] == 1 and len(doc["trials"]) == 2 and "recipe" not in doc["trials"][0]
    assert doc["files"]["best.yaml"].endswith("best.yaml")


def test_timeout_stops_starting_trials(tmp_path, calls, monkeypatch):
    fake = trial_mod.execute

    def slow(*args, **kwargs):
        time.sleep(1.5)
        return fake(*args, **kwargs)

    monkeypatch.setattr(trial_mod, "execute", slow)
    recipe = recipe_file(tmp_path, ["none", "int8-dynamic", "int8-static", "fp16"])
    result = search(recipe, "-o", tmp_path / "o", "--trials", 4, "--timeout", 1)
    assert result.exit_code == 0, result.output
    assert calls == ["0000"]  # the first trial ran to its end; none started after 1 s
