"""``compress --help``, ``compress list`` and recipe validation import no heavy library.

Each check runs in a fresh interpreter (the test process has imported torch long ago), and
reports which heavy modules are in ``sys.modules`` after each step.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
HEAVY = ("torch", "onnxruntime", "tensorflow", "transformers", "triton")

PROBE = """
import contextlib, io, json, sys

HEAVY = {heavy!r}
loaded = {{}}


def record(step):
    loaded[step] = sorted(m for m in HEAVY if m in sys.modules)


def run_main(*args):
    sys.argv = ["compress", *args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
    assert code in (0, None), (args, code, out.getvalue())
    return out.getvalue()


import edgecompress.cli
from edgecompress.cli import main

record("import edgecompress.cli")
assert "Usage: compress" in run_main("--help")
record("compress --help")
assert "quantize" in run_main("list")
record("compress list")

from edgecompress.recipe import load_recipe

for path in {recipes!r}:
    load_recipe(path)
    record("load_recipe " + path.rsplit("/", 1)[-1])
print(json.dumps(loaded))
"""


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    """Heavy modules in sys.modules after each step, run in one fresh interpreter."""
    code = PROBE.format(heavy=HEAVY, recipes=[str(p) for p in RECIPES])
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_there_are_recipes_to_validate():
    assert RECIPES


@pytest.mark.parametrize(
    "step",
    ["import edgecompress.cli", "compress --help", "compress list"]
    + [f"load_recipe {p.name}" for p in RECIPES],
)
def test_step_imports_no_heavy_library(loaded, step):
    assert loaded[step] == []
