"""Recipes: invalid ones are refused with file, field path and reason."""

from __future__ import annotations

import pytest

from edgecompress.errors import RecipeError
from edgecompress.recipe import load_recipe, parse_recipe

MODEL = "model: {factory: 'edgecompress.zoo:digits_cnn', weights: 'w.pt'}\n"


def test_demo_recipe_is_valid(tmp_path):
    from tests.conftest import REPO

    recipe = load_recipe(REPO / "recipes" / "digits.yaml")
    assert recipe.model.factory == "edgecompress.zoo:digits_cnn"
    assert recipe.task.kind.value == "classification"


@pytest.mark.parametrize("name", ["digits.yaml", "digits-tflite.yaml", "minilm-lambda.yaml"])
def test_every_shipped_recipe_validates(name):
    from tests.conftest import REPO

    recipe = load_recipe(REPO / "recipes" / name)
    assert recipe.export, name


def test_minilm_recipe_ships_int8_token():
    from tests.conftest import REPO

    recipe = load_recipe(REPO / "recipes" / "minilm-lambda.yaml")
    (onnx_step,) = [s for s in recipe.export_configs if s[0] == "onnx"]
    config = onnx_step[1]
    assert [q.value for q in config.quantize] == ["none", "int8-token"]
    assert config.token_outliers == 8 and config.gptq
    assert recipe.package.lambda_.variant == "onnx-int8-token"


def test_typo_in_field_name_names_path_and_suggests(write_recipe):
    path = write_recipe(MODEL + "task: {kind: classification, dta: digits}\n")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert message.startswith(f"{path}: task.dta: unknown field")
    assert "did you mean 'data'" in message
    assert info.value.exit_code == 2


def test_out_of_range_value_in_step(write_recipe):
    path = write_recipe(MODEL + "steps:\n  - fuse: {}\n  - prune: {amount: 1.5}\n")
    with pytest.raises(RecipeError, match=r"steps\[1\]\.prune\.amount: must be < 1, got 1\.5"):
        load_recipe(path)


def test_unknown_compressor_names_step(write_recipe):
    path = write_recipe(MODEL + "steps:\n  - prun: {amount: 0.5}\n")
    with pytest.raises(
        RecipeError, match=r"steps\[0\]: unknown compressor 'prun'.*did you mean 'prune'"
    ):
        load_recipe(path)


def test_wrong_type_names_field(write_recipe):
    path = write_recipe(MODEL + "bench: {runs: many}\n")
    with pytest.raises(RecipeError, match=r"bench\.runs: .*integer.*got 'many'"):
        load_recipe(path)


def test_two_model_sources_refused():
    with pytest.raises(RecipeError, match="exactly one of factory, pt2, hf, onnx"):
        parse_recipe({"model": {"onnx": "a.onnx", "hf": "dir"}})


def test_not_yaml(write_recipe):
    path = write_recipe("model: [unclosed\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_lambda_memory_out_of_range():
    with pytest.raises(RecipeError, match=r"package\.lambda: .*128\.\.10240"):
        parse_recipe({"model": {"onnx": "a.onnx"}, "package": {"lambda": {"memory_mb": [64]}}})


ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


def _refused_fast(path, pattern):
    import time

    start = time.perf_counter()
    with pytest.raises(RecipeError, match=pattern) as info:
        load_recipe(path)
    assert time.perf_counter() - start < 1.0  # refused before any expansion or parsing
    assert info.value.exit_code == 2 and str(path) in str(info.value)


def test_alias_bomb_refused(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB + "model: {onnx: m.onnx}\n")
    _refused_fast(path, "aliases")


def test_oversized_recipe_refused(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("model: {onnx: m.onnx}\nname: " + "a" * (50 << 20) + "\n")
    _refused_fast(path, "a recipe may be 1,048,576 at most")


@pytest.mark.parametrize("name", ["../../escape", "a" * 101, "", "has space"])
def test_recipe_name_must_be_a_folder_name(write_recipe, name):
    path = write_recipe(f"name: '{name}'\nmodel: {{onnx: m.onnx}}\n")
    with pytest.raises(RecipeError, match="name: string should match pattern"):
        load_recipe(path)


def test_lambda_section_carries_allow_non_finite_to_each_target():
    from edgecompress.awslambda.options import LambdaSection

    section = LambdaSection(arch=["arm64", "x86_64"], allow_non_finite=True)
    assert [t.allow_non_finite for t in map(section.for_arch, section.arch)] == [True, True]
    assert LambdaSection().for_arch("arm64").allow_non_finite is False
