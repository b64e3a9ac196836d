"""The compress CLI: exit codes, one-paragraph errors, atomic outputs, inspect."""

from __future__ import annotations

import json
import os
import pickle

import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from tests.conftest import DIGITS_WEIGHTS

RECIPE = """name: t
model: {{factory: 'edgecompress.zoo:digits_cnn', weights: '{weights}'}}
task: {{kind: classification, data: digits}}
{extra}"""


def invoke(*args):
    return CliRunner().invoke(cli, list(map(str, args)))


def recipe_file(tmp_path, weights=DIGITS_WEIGHTS, extra=""):
    path = tmp_path / "r.yaml"
    path.write_text(RECIPE.format(weights=weights, extra=extra))
    return path


def test_help_and_version():
    assert invoke("-h").exit_code == 0
    result = invoke("--version")
    assert result.exit_code == 0 and "0.1.0" in result.output


def test_run_writes_manifest_and_refuses_second_run(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", recipe_file(tmp_path), "-o", out)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["baseline"]["metric"] == "accuracy"
    assert manifest["baseline"]["value"] >= 0.95
    assert "model.pt" in manifest["files"]
    stamp = (out / "manifest.json").stat().st_mtime_ns

    again = invoke("run", recipe_file(tmp_path), "-o", out)
    assert again.exit_code == 2, again.output
    assert "exists; pass --force" in again.output
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # first run intact

    forced = invoke("run", recipe_file(tmp_path), "-o", out, "--force")
    assert forced.exit_code == 0, forced.output


def test_run_json_is_one_document(tmp_path):
    result = CliRunner().invoke(
        cli, ["run", str(recipe_file(tmp_path)), "-o", str(tmp_path / "o"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["schema_version"] == 1


def _assert_clean_failure(result, code, pattern, out):
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert pattern in result.output
    assert not out.exists()
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert leftovers == []


@pytest.mark.parametrize(
    "extra, code, pattern",
    [
        ("task: {kind: classification, dataa: digits}\n", 2, "task.dataa: unknown field"),
        ("bench: {runs: 0}\n", 2, "bench.runs: must be >= 1, got 0"),
        ("seed: zero\n", 2, "seed: input should be a valid integer"),
    ],
)
def test_invalid_recipe_exits_2(tmp_path, extra, code, pattern):
    path = tmp_path / "r.yaml"
    path.write_text(
        "model: {factory: 'edgecompress.zoo:digits_cnn'}\n"
        + ("" if extra.startswith("task") else "task: {kind: classification}\n")
        + extra
    )
    out = tmp_path / "out"
    _assert_clean_failure(invoke("run", path, "-o", out), code, pattern, out)


def test_missing_weights_file(tmp_path):
    out = tmp_path / "out"
    result = invoke("run", recipe_file(tmp_path, weights=str(tmp_path / "nope.pt")), "-o", out)
    _assert_clean_failure(result, 1, "model.weights: file not found", out)


def test_corrupt_weights_file(tmp_path):
    bad = tmp_path / "random.pt"
    bad.write_bytes(os.urandom(4096))
    out = tmp_path / "out"
    result = invoke("run", recipe_file(tmp_path, weights=str(bad)), "-o", out)
    _assert_clean_failure(result, 1, "is not a valid PyTorch weights file", out)


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_pickled_object_is_refused(tmp_path, how):
    import torch

    evil = tmp_path / "evil.pt"
    if how == "torch":
        torch.save({"x": Payload()}, evil)
    else:
        evil.write_bytes(pickle.dumps(Payload()))
    out = tmp_path / "out"
    result = invoke("run", recipe_file(tmp_path, weights=str(evil)), "-o", out)
    _assert_clean_failure(result, 1, "refusing to unpickle", out)
    assert "it imports posix.system" in result.output  # names what it would have run
    assert "weights_only" not in result.output  # and never advises the unsafe retry


def test_debug_shows_traceback(tmp_path):
    bad = tmp_path / "random.pt"
    bad.write_bytes(os.urandom(64))
    result = invoke("--debug", "run", recipe_file(tmp_path, weights=str(bad)), "-o", tmp_path / "o")
    assert result.exit_code != 0
    assert result.exception is not None


def test_inspect_demo_model_text_and_json():
    from tests.conftest import REPO

    recipe = REPO / "recipes" / "digits.yaml"
    result = invoke("inspect", recipe)
    assert result.exit_code == 0, result.output
    assert "params   28,218" in result.output
    assert "image: float32[batch, 1, 8, 8]" in result.output
    data = json.loads(invoke("inspect", recipe, "--json").output)
    assert data["params"] == 28218
    assert data["io"]["outputs"][0]["shape"] == ["batch", 10]
    assert data["ops"]["Conv2d"] == 3


def test_inspect_onnx_file(digits_onnx):
    path = digits_onnx
    data = json.loads(invoke("inspect", path, "--json").output)
    assert data["format"] == "onnx"
    assert data["io"]["inputs"][0] == {
        "name": "image",
        "dtype": "float32",
        "shape": ["batch", 1, 8, 8],
    }
    assert data["ops"]["Conv"] == 3
    assert "params" in invoke("inspect", path).output


def test_inspect_hf_folder(tiny_bert_dir):
    result = invoke("inspect", tiny_bert_dir, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [t["name"] for t in data["io"]["inputs"]]
    assert names == ["input_ids", "attention_mask", "token_type_ids"]
    assert data["io"]["outputs"][0]["name"] == "sentence_embedding"
    assert data["params"] > 10_000


def test_inspect_corrupt_onnx(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_bytes(b"not an onnx file at all")
    result = invoke("inspect", path)
    assert result.exit_code == 1, result.output
    assert "is not a valid ONNX model" in result.output


def test_list_shows_builtins():
    result = invoke("list", "--json")
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.output), list)


def test_gate_below_measured_value_exits_3_and_keeps_outputs(tmp_path):
    extra = (
        "export: [{onnx: {quantize: [none]}}]\n"
        "bench: {runs: 20, warmup: 2, threads: [1], cold_start_runs: 1}\n"
        "gates: {max_p95_ms: 0.000001, max_accuracy_drop: 0.5}\n"
    )
    out = tmp_path / "out"
    result = invoke("run", recipe_file(tmp_path, extra=extra), "-o", out)
    assert result.exit_code == 3, result.output
    assert "FAIL" in result.output and "max_p95_ms: onnx-fp32" in result.output
    assert "gates failed: max_p95_ms" in result.output
    report = json.loads((out / "report.json").read_text())
    failed = [g for g in report["gates"] if not g["passed"]]
    assert {g["name"].split(":")[0] for g in failed} == {"max_p95_ms"}
    assert (out / "report.html").exists() and (out / "model.onnx").exists()
