"""The pipeline: atomic output folders and manifest contents."""

from __future__ import annotations

import json

import pytest

from edgecompress.errors import CompressError, DataError
from edgecompress.outdir import atomic_dir
from edgecompress.pipeline import run_recipe
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
    with pytest.raises(CompressError, match="pass --force"), atomic_dir(out):
        pass
    with atomic_dir(out, force=True) as work:
        (work / "b").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b"]
