"""The pipeline: atomic output folders and manifest contents."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from edgecompress import __version__, stages
from edgecompress.awslambda.options import LambdaTarget
from edgecompress.errors import CompressError, DataError
from edgecompress.outdir import atomic_dir, sha256_file
from edgecompress.pipeline import run_recipe, write_manifest
from edgecompress.recipe import parse_recipe
from tests.conftest import DIGITS_WEIGHTS


def _recipe(tmp_path, **extra):
    data = {
        "model": {"factory": "edgecompress.zoo:digits_cnn", "weights": DIGITS_WEIGHTS},
        "task": {"kind": "classification", "data": "digits"},
        **extra,
    }
    return parse_recipe(data, "test.yaml", tmp_path)


def test_failure_after_model_load_leaves_nothing(tmp_path):
    recipe = _recipe(tmp_path, task={"kind": "classification", "data": "no_such_mod:load"})
    out = tmp_path / "out"
    with pytest.raises(CompressError):
        run_recipe(recipe, out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_unknown_builtin_dataset_is_a_data_error(tmp_path):
    recipe = _recipe(tmp_path, task={"kind": "classification", "data": "mnist"})
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        run_recipe(recipe, tmp_path / "out")


def test_manifest_records_files_with_sha256(tmp_path):
    result = run_recipe(_recipe(tmp_path), tmp_path / "out")
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(result.manifest, default=str))
    for name, digest in manifest["files"].items():
        assert (tmp_path / "out" / name).is_file() and len(digest) == 64
    assert manifest["final"]["metric"]["value"] == pytest.approx(manifest["baseline"]["value"])


def test_atomic_dir_replaces_only_with_force(tmp_path):
    out = tmp_path / "o"
    with atomic_dir(out) as work:
        (work / "a").write_text("1")
        write_manifest(work, {})  # an output edgecompress wrote: --force may replace it
    with pytest.raises(CompressError, match="pass --force"), atomic_dir(out):
        pass
    with atomic_dir(out, force=True) as work:
        (work / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]


def test_write_manifest_adds_tool_and_every_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"onnx")
    (tmp_path / "sub" / "x.bin").write_bytes(b"x")
    (tmp_path / "manifest.json").write_text("{}")  # an older one is replaced, never listed
    manifest = write_manifest(tmp_path, {"command": "test", "files": "ignored"})
    assert manifest["schema_version"] == 1 and manifest["command"] == "test"
    assert manifest["tool"] == {"name": "edgecompress", "version": __version__}
    assert manifest["files"] == {
        "model.onnx": sha256_file(tmp_path / "model.onnx"),
        "sub/x.bin": sha256_file(tmp_path / "sub" / "x.bin"),
    }
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "model.onnx", "sub"]


def test_build_zips_passes_one_target_per_arch(tmp_path, monkeypatch):
    calls = []

    def fake_zip(model_path, io, task, out_dir, options, tokenizer_dir=None):
        calls.append(options)
        return SimpleNamespace(to_dict=lambda: {"arch": options.arch.value})

    monkeypatch.setattr(stages, "build_lambda_zip", fake_zip)
    lam = {"arch": ["arm64", "x86_64"], "python": "3.11", "budget_mib": 20, "self_check": False}
    recipe = _recipe(tmp_path, package={"lambda": lam})
    variant = SimpleNamespace(name="onnx-fp32", path=tmp_path / "m.onnx", io=None, size_bytes=1)
    variant.validation = {"passed": True}
    bundle = SimpleNamespace(task=None, tokenizer_dir=None)
    zips = stages.build_zips(recipe, bundle, None, tmp_path, [variant])
    assert [z["variant"] for z in zips] == ["onnx-fp32", "onnx-fp32"]
    assert calls == [
        LambdaTarget(
            arch=arch, python="3.11", budget_mib=20, self_check=False, memory_mb=2048
        )  # memory: the largest of the recipe's default memory_mb [512, 1024, 2048]
        for arch in ("arm64", "x86_64")
    ]
