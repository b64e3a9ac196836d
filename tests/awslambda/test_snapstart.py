"""SnapStart: a zip built with ``snapstart: true`` carries snapstart.py and io_spec says so,
its template.yaml declares SnapStart behind an alias, and the hooks work when awslambdaric's
own hook runner calls them (before the snapshot: the session is warmed through the handler;
after restore: randomness re-seeded, instance id and environment re-read). The zip is run
by a Python 3.12 interpreter with only the zip and awslambdaric on its path."""

from __future__ import annotations

import json
import subprocess
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml

from edgecompress.awslambda import snapstart
from edgecompress.awslambda.bundle import build_lambda_zip
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.awslambda.selfcheck import ric_dir_for, unzip
from edgecompress.awslambda.target import target_interpreter
from edgecompress.errors import RecipeError
from edgecompress.loaders import load_onnx
from edgecompress.measure import cost, suite
from edgecompress.model import TaskSpec
from edgecompress.recipe import load_recipe
from tests.awslambda.lambda_models import digits_int8_onnx

REPO = Path(__file__).resolve().parents[2]

HOOKS_SCRIPT = """
import json, os, random, sys
sys.path[:0] = [{task!r}] + ([{ric!r}] if {with_ric} else [])
import numpy as np
import handler

out = {{"hooks": handler.SNAPSTART.STATE["hooks"], "first_before": len(handler._FIRST)}}
if out["hooks"]:
    import snapshot_restore_py as srp
    from awslambdaric import lambda_runtime_hooks_runner as runner

    out["registered"] = [len(srp.get_before_snapshot()), len(srp.get_after_restore())]
    runner.run_before_snapshot()
    out["warmed"] = handler.SNAPSTART.STATE["warmed"]
    out["first_after_warm"] = len(handler._FIRST)
    py_state, np_state = random.getstate(), np.random.get_state()
    old_id = handler.SNAPSTART.STATE["instance_id"]
    random.setstate(py_state); unseeded_py = random.random()  # what every copy would draw
    np.random.set_state(np_state); unseeded_np = np.random.random()
    random.setstate(py_state); np.random.set_state(np_state)
    os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = "stream-after-restore"
    runner.run_after_restore()
    out["py_reseeded"] = random.random() != unseeded_py
    out["np_reseeded"] = np.random.random() != unseeded_np
    out["new_instance_id"] = handler.SNAPSTART.STATE["instance_id"] != old_id
    out["restores"] = handler.SNAPSTART.STATE["restores"]
    out["log_stream"] = handler.SNAPSTART.STATE["log_stream"]
answer = handler.handler(handler.SNAPSTART.warm_event(handler.SPEC), None)
out["labels"] = answer["labels"]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def snap_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("snapstart")
    model = digits_int8_onnx(folder)
    io = load_onnx(model, TaskSpec()).io
    options = LambdaTarget(arch="x86_64", python="3.12", self_check=False, snapstart=True)
    built = build_lambda_zip(model, io, TaskSpec(), folder / "out", options)
    return built


@pytest.mark.slow
def test_zip_and_template_declare_snapstart(snap_zip):
    with zipfile.ZipFile(snap_zip.path) as zf:
        names = set(zf.namelist())
        spec = json.loads(zf.read("io_spec.json"))
        shipped = zf.read("snapstart.py")
    assert {"snapstart.py", "__pycache__/snapstart.cpython-312.pyc"} <= names
    assert shipped == snapstart.TEMPLATE.read_bytes() and spec["snapstart"] is True
    text = snap_zip.template.read_text()
    props = yaml.load(text, Loader=yaml.BaseLoader)["Resources"]["ModelFunction"]["Properties"]
    assert props["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert props["AutoPublishAlias"] == "live" and props["Runtime"] == "python3.12"


def _run_hooks(snap_zip, tmp_path: Path, with_ric: bool) -> tuple[dict, str]:
    python = target_interpreter("x86_64", "3.12")
    if python is None:
        pytest.skip("no Python 3.12 interpreter on this x86_64 host")
    task = unzip(snap_zip.path, tmp_path / "task")
    ric = ric_dir_for("3.12", tmp_path / "ric", "x86_64")
    script = HOOKS_SCRIPT.format(task=str(task), ric=str(ric), with_ric=with_ric)
    proc = subprocess.run(
        [python, "-I", "-S", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=task,
        env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


@pytest.mark.slow
def test_hooks_warm_before_snapshot_and_reseed_after_restore(snap_zip, tmp_path):
    out, stderr = _run_hooks(snap_zip, tmp_path, with_ric=True)
    assert out["hooks"] is True and out["registered"] == [1, 1]
    assert out["first_before"] == 0 and out["warmed"] and out["first_after_warm"] == 1
    assert out["py_reseeded"] and out["np_reseeded"] and out["new_instance_id"]
    assert out["restores"] == 1 and out["log_stream"] == "stream-after-restore"
    assert len(out["labels"]) == 1 and "EDGECOMPRESS_RESTORE instance" in stderr


@pytest.mark.slow
def test_handler_works_without_snapshot_restore_py(snap_zip, tmp_path):
    out, stderr = _run_hooks(snap_zip, tmp_path, with_ric=False)
    assert out["hooks"] is False and len(out["labels"]) == 1
    assert "snapshot_restore_py not found; no hooks" in stderr


def test_template_lines_and_python_floor():
    assert snapstart.template_lines(False) == ""
    assert "AutoPublishAlias: live" in snapstart.template_lines(True)
    with pytest.raises(ValueError, match="needs python 3.12 or later, and python is 3.11"):
        LambdaTarget(python="3.11", snapstart=True)
    assert LambdaTarget(python="3.13", snapstart=True).snapstart


def test_recipe_gives_zip_options_and_a_cost_table_with_and_without(tmp_path):
    recipe = load_recipe(REPO / "recipes" / "digits-snapstart.yaml")
    assert recipe.package.lambda_.for_arch("x86_64").snapstart is True  # build_lambda_zip's
    by_threads = {1: {"mean": 1.0, "p95": 1.5}}
    pricing = cost.load_pricing()
    fields = suite._cost_fields(by_threads, 400.0, ["x86_64"], recipe, pricing)
    rows = fields["snapstart"]["rows"]
    assert [r["memory_mb"] for r in rows] == [512, 1024] and fields["snapstart"]["estimate"]
    plain = {(r["arch"], r["memory_mb"]): r["usd_per_million"] for r in fields["cost_table"]}
    assert all(plain[(r["arch"], r["memory_mb"])] == r["usd_per_million"] for r in rows)
    assert all(r["cache_usd_per_million"] > 0 for r in rows)  # requests_per_month is set
    recipe.package.lambda_.snapstart = False
    assert "snapstart" not in suite._cost_fields(by_threads, 400.0, ["x86_64"], recipe, pricing)


def test_recipe_field_named_in_the_error(tmp_path):
    recipe = tmp_path / "r.yaml"
    body = (REPO / "recipes" / "digits-snapstart.yaml").read_text()
    recipe.write_text(body.replace('python: "3.12"', 'python: "3.11"'))
    with pytest.raises(RecipeError, match=r"r\.yaml: package\.lambda\.snapstart: .*3\.12"):
        load_recipe(recipe)
