"""The search section: addresses, choices and ranges, validated like the rest of a recipe."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.errors import RecipeError
from edgecompress.recipe import parse_recipe
from edgecompress.search import space
from edgecompress.search.schema import AddressError, parse_address, set_at
from tests.conftest import DIGITS_WEIGHTS

BASE = {
    "name": "t",
    "model": {"factory": "edgecompress.zoo:digits_cnn", "weights": DIGITS_WEIGHTS},
    "task": {"kind": "classification", "data": "digits"},
    "steps": [
        {"prune": {"method": "structured", "amount": 0.5}},
        {"fuse": None},
        {"quantize": {"scheme": "int8-static"}},
    ],
    "export": ["onnx"],
    "gates": {"max_accuracy_drop": 0.02},
}


def parse(space_: dict, **extra):
    return parse_recipe({**BASE, "search": {"space": space_, **extra}}, "r.yaml")


def test_addresses_parse():
    assert parse_address("steps[0].prune.amount") == ("steps", 0, "prune", "amount")
    assert parse_address("export") == ("export",)
    assert parse_address("package.lambda.memory_mb") == ("package", "lambda", "memory_mb")
    for bad in ("steps[0]..amount", "steps[x]", "", "bench.runs", "package.lambda", "gates.x"):
        with pytest.raises(AddressError):
            parse_address(bad)


def test_set_at_normalises_bare_names_and_creates_mappings():
    data = {"export": ["onnx"], "steps": [{"fuse": None}]}
    set_at(data, parse_address("export[0].onnx.quantize"), ["int8-dynamic"])
    set_at(data, parse_address("steps[0].fuse.tolerance"), 1e-4)
    set_at(data, parse_address("package.lambda.memory_mb"), [512])
    assert data == {
        "export": [{"onnx": {"quantize": ["int8-dynamic"]}}],
        "steps": [{"fuse": {"tolerance": 1e-4}}],
        "package": {"lambda": {"memory_mb": [512]}},
    }


def test_valid_space_and_list_fields_take_scalars():
    recipe = parse(
        {
            "steps[0].prune.amount": {"low": 0.2, "high": 0.7},
            "steps[2].quantize.scheme": ["int8-dynamic", "int8-static"],
            "export": [["onnx"], ["tflite"]],
            "export[0].onnx.quantize": ["int8-static", "none"],
            "package.lambda.memory_mb": {"low": 128, "high": 1024, "step": 128},
            "package.lambda.arch": ["arm64", "x86_64"],
            "package.lambda.python": ["3.11", "3.12"],
        }
    )
    wraps = {p.address: p.wrap for p in recipe.search_params}
    assert wraps == {
        "steps[0].prune.amount": False,
        "steps[2].quantize.scheme": False,
        "export": True,
        "export[0].onnx.quantize": True,
        "package.lambda.memory_mb": True,
        "package.lambda.arch": True,
        "package.lambda.python": False,
    }
    values = {"package.lambda.memory_mb": 256, "export[0].onnx.quantize": "none"}
    data = space.trial_recipe({**BASE, "search": {}}, recipe.search_params, values, "t-1")
    assert data["package"]["lambda"]["memory_mb"] == [256]
    assert data["export"] == [{"onnx": {"quantize": ["none"]}}]
    assert "search" not in data and data["name"] == "t-1"
    parse_recipe(data, "trial.yaml")  # a plain, runnable recipe


@pytest.mark.parametrize(
    "space_, message",
    [
        ({"steps[0].prune.amount": {"low": 0.2, "high": 1.5}},
         "search.space.steps[0].prune.amount: the value 1.5 makes an invalid recipe: "
         "steps[0].prune.amount: must be < 1, got 1.5"),
        ({"steps[1].prune.amount": [0.1]}, "search.space.steps[1].prune.amount: steps[1] is "
         "'fuse', not 'prune'"),
        ({"steps[5].prune.amount": [0.1]}, "search.space.steps[5].prune.amount: steps[5] has 3"),
        ({"steps[0].prune.amout": [0.1]}, "steps[0].prune.amout: unknown field (did you mean "
         "'amount'?)"),
        ({"bench.runs": [1, 2]}, "search.space.bench.runs: only steps[...], export[...] and "
         "package.lambda.*"),
        ({"steps[2].quantize.scheme": ["int9"]}, "search.space.steps[2].quantize.scheme: the "
         "value 'int9' makes an invalid recipe"),
        ({"package.lambda.memory_mb": {"low": 64, "high": 1024}},
         "search.space.package.lambda.memory_mb: the value 64"),
        ({"steps[0].prune.amount": {"low": 0.7, "high": 0.2}},
         "search.space.steps[0].prune.amount: low must be < high"),
        ({"steps[0].prune.amount": {"low": 0.2}}, "search.space.steps[0].prune.amount: a range "
         "needs high"),
        ({"steps[0].prune.amount": []}, "search.space.steps[0].prune.amount: give at least one"),
        ({"steps[0].prune.amount": 0.3}, "search.space.steps[0].prune.amount: give a list of "
         "choices or a range"),
        ({"export": ["onnx", "tflitex"]}, "unknown exporter 'tflitex'"),
    ],
)  # fmt: skip
def test_invalid_space_names_the_field(space_, message):
    with pytest.raises(RecipeError) as err:
        parse(space_)
    assert message in str(err.value)
    assert str(err.value).startswith("r.yaml: search.space.")


@pytest.mark.parametrize(
    "extra, message",
    [
        ({"objectives": ["cost"]}, "search.objectives[0]: input should be 'accuracy_drop'"),
        ({"objectives": ["zip_mib"]}, "search.objectives: zip_mib needs a Lambda zip"),
        ({"samplr": "tpe"}, "search.samplr: unknown field (did you mean 'sampler'?)"),
        ({"start": [{"export[0].onnx.quantize": ["int4"]}]}, "search.start[0].export[0].onnx"),
        ({"start": [{"steps[0].prune.amount": 0.9}]}, "search.start[0].steps[0].prune.amount: "
         "0.9 is not in its choices or range"),
        ({"sampler": "grid"}, "search.space.steps[0].prune.amount: sampler grid needs choices"),
    ],
)  # fmt: skip
def test_invalid_search_settings_name_the_field(extra, message):
    with pytest.raises(RecipeError) as err:
        parse({"steps[0].prune.amount": {"low": 0.2, "high": 0.7}}, **extra)
    assert message in str(err.value)


def test_grid_enqueues_every_combination():
    recipe = parse(
        {"steps[0].prune.amount": {"low": 0.25, "high": 0.75, "step": 0.25},
         "export": [["onnx"], ["tflite"]]},
        sampler="grid",
    )  # fmt: skip
    points = space.enqueue_points(recipe.search_params, [], recipe.search.sampler)
    assert len(points) == 6
    assert points[0] == {"steps[0].prune.amount": 0.25, "export": '["onnx"]'}


def test_cli_search_exits_2_naming_the_field(tmp_path):
    import yaml

    recipe = tmp_path / "r.yaml"
    bad = {"steps[0].prune.amount": {"low": 0.2, "high": 1.5}}
    recipe.write_text(yaml.safe_dump({**BASE, "search": {"space": bad}}))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["search", str(recipe), "-o", str(out), "--trials", "2"])
    assert result.exit_code == 2, result.output
    assert "search.space.steps[0].prune.amount: the value 1.5" in result.output
    assert "Traceback" not in result.output and not out.exists()


def test_cli_search_without_search_section_exits_2(tmp_path):
    import yaml

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(BASE))
    result = CliRunner().invoke(cli, ["search", str(recipe), "-o", str(tmp_path / "o")])
    assert result.exit_code == 2 and "search: missing" in result.output


def test_cli_search_usage_errors_exit_2(tmp_path):
    result = CliRunner().invoke(cli, ["search", "r.yaml", "-o", str(tmp_path), "--workers", "0"])
    assert result.exit_code == 2 and "--workers" in result.output


def test_relative_to_moves_the_base_of_relative_paths(tmp_path):
    from edgecompress.recipe import load_recipe

    (tmp_path / "models").mkdir()
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "elsewhere" / "r.yaml"
    path.write_text("model: {onnx: m.onnx}\nrelative_to: ../models\n")
    assert load_recipe(path).base_dir.resolve() == (tmp_path / "models").resolve()
    path.write_text("model: {onnx: m.onnx}\nrelative_to: ../nowhere\n")
    with pytest.raises(RecipeError, match="relative_to: no such folder"):
        load_recipe(path)


def test_validating_a_search_recipe_and_search_help_load_no_heavy_library():
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (
        "import sys, json, contextlib, io\n"
        "from edgecompress.recipe import load_recipe\n"
        "load_recipe('recipes/digits-search.yaml')\n"
        "from edgecompress.cli import main\n"
        "sys.argv = ['compress', 'search', '--help']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n        main()\n    except SystemExit:\n        pass\n"
        "print(json.dumps([m for m in ('torch', 'optuna', 'matplotlib', 'onnxruntime') "
        "if m in sys.modules]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
