"""Output folders: nothing a user owns is lost, nothing is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgecompress.cli.main import cli
from edgecompress.errors import OutputExistsError, UnsafeOutputError
from edgecompress.outdir import atomic_dir, written_by_us
from tests.conftest import DIGITS_WEIGHTS

OURS = {"schema_version": 1, "tool": {"name": "edgecompress", "version": "0"}}


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def user_folder(path: Path, manifest: dict | None = None) -> Path:
    (path / "src").mkdir(parents=True)
    (path / "src" / "app.js").write_text("x")
    if manifest is not None:
        (path / "manifest.json").write_text(json.dumps(manifest))
    return path


def test_demo_keeps_a_folder_whose_manifest_is_not_ours(tmp_path):
    folder = user_folder(tmp_path / "d", manifest={})
    result = invoke("demo", "-o", folder)
    assert result.exit_code == 2, result.output
    assert "not a previous demo output" in result.output
    assert (folder / "src" / "app.js").read_text() == "x"


def test_demo_refuses_a_file_and_says_so(tmp_path):
    target = tmp_path / "afile"
    target.write_text("keep")
    result = invoke("demo", "-o", target)
    assert result.exit_code == 2 and "a file that is not a previous demo output" in result.output
    assert target.read_text() == "keep"


def test_written_by_us_reads_the_tool(tmp_path):
    assert not written_by_us(user_folder(tmp_path / "a", manifest={}))
    assert not written_by_us(user_folder(tmp_path / "b", manifest=None))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text("[1, 2")
    assert not written_by_us(tmp_path / "c")
    assert written_by_us(user_folder(tmp_path / "d", manifest=OURS))


def test_force_replaces_only_what_we_wrote(tmp_path):
    foreign = user_folder(tmp_path / "foreign", manifest={"name": "x"})
    with (
        pytest.raises(OutputExistsError, match="holds manifest.json, src"),
        atomic_dir(foreign, force=True),
    ):
        pass
    assert (foreign / "src" / "app.js").exists() and leftovers(tmp_path) == []
    ours = user_folder(tmp_path / "ours", manifest=OURS)
    with atomic_dir(ours, force=True) as work:
        (work / "new").write_text("1")
    assert sorted(p.name for p in ours.iterdir()) == ["new"]
    (tmp_path / "empty").mkdir()
    with atomic_dir(tmp_path / "empty", force=True) as work:
        (work / "new").write_text("1")
    assert leftovers(tmp_path) == []


def test_run_from_inside_out_refused_before_any_work(tmp_path, monkeypatch):
    recipe = tmp_path / "d" / "recipe.yaml"
    (tmp_path / "d" / "inner").mkdir(parents=True)
    recipe.write_text("model: {onnx: missing.onnx}\ntask: {data: digits}\n")
    monkeypatch.chdir(tmp_path / "d" / "inner")
    for out in ("..", ".", str(tmp_path / "d")):
        result = invoke("run", "../recipe.yaml", "-o", out, "--force")
        assert result.exit_code == 2, result.output
        assert "current folder or holds it" in result.output
    assert recipe.exists() and (tmp_path / "d" / "inner").is_dir()
    assert leftovers(tmp_path) == leftovers(tmp_path / "d") == []


@pytest.mark.parametrize("where", ["root", "home"])
def test_root_and_home_refused(tmp_path, monkeypatch, where):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    out = Path("/") if where == "root" else Path("~")
    with pytest.raises(UnsafeOutputError, match="refusing to write"), atomic_dir(out, True):
        pytest.fail("no work may start")


def test_out_holding_an_input_refused(tmp_path):
    model = tmp_path / "proj" / "models" / "m.onnx"
    model.parent.mkdir(parents=True)
    model.write_text("x")
    with (
        pytest.raises(UnsafeOutputError, match="holds the input"),
        atomic_dir(tmp_path / "proj", force=True, protect=[model]),
    ):
        pytest.fail("no work may start")
    assert model.exists()


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_force_over_a_file_or_symlink_unlinks_it(tmp_path, kind):
    precious = tmp_path / "precious"
    user_folder(precious)
    out = tmp_path / "o"
    if kind == "file":
        out.write_text("old")
    else:
        out.symlink_to(precious, target_is_directory=True)
    with atomic_dir(out, force=True) as work:
        (work / "new").write_text("1")
    assert out.is_dir() and not out.is_symlink() and (out / "new").exists()
    assert (precious / "src" / "app.js").exists()  # the link's target is never followed
    assert leftovers(tmp_path) == []


def test_losing_a_race_for_out_cleans_up(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(OutputExistsError, match="nothing was changed"), atomic_dir(out) as work:
        (work / "mine").write_text("1")
        user_folder(out, manifest=OURS)  # another run finished first
    assert (out / "src" / "app.js").exists() and not (out / "mine").exists()
    assert leftovers(tmp_path) == []


def test_output_follows_umask(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_dir(tmp_path / "o") as work:
            (work / "f").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "o").stat().st_mode & 0o777 == 0o755


RECIPE = f"""name: sig
model: {{factory: 'edgecompress.zoo:digits_cnn', weights: '{DIGITS_WEIGHTS}'}}
task: {{kind: classification, data: digits}}
export: [onnx]
package: {{lambda: {{arch: [x86_64], python: "{sys.version_info.major}.{sys.version_info.minor}"}}}}
bench: {{runs: 20}}
"""


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [1.0, 4.0, 9.0, 14.0])
def test_sigterm_leaves_nothing_behind(tmp_path, delay_s):
    """SIGTERM at several points of a run (loading, exporting, packaging, self-checking)."""
    (tmp_path / "r.yaml").write_text(RECIPE)
    temp = tmp_path / "tmp"
    temp.mkdir()
    # torch keeps its compile cache in TMPDIR: elsewhere, so only our leftovers count
    env = {**os.environ, "TMPDIR": str(temp), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "ind")}
    compress = Path(sys.executable).with_name("compress")
    proc = subprocess.Popen(
        [str(compress), "-q", "run", "r.yaml", "-o", "out"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(delay_s)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip(f"the run finished within {delay_s} s")
    assert proc.returncode == 143, err.decode()[-2000:]
    assert "Traceback" not in err.decode()
    assert not (tmp_path / "out").exists()
    assert leftovers(tmp_path) == []
    # temp folders (ours: ec-lambda-*, ec-cold-*, ...); a library's small session file may stay
    assert sorted(p.name for p in temp.iterdir() if p.is_dir()) == []


def test_run_into_the_recipes_folder_refused(tmp_path):
    project = tmp_path / "proj"
    project.mkdir()
    recipe = project / "r.yaml"
    recipe.write_text(RECIPE)
    result = invoke("run", recipe, "-o", project, "--force")
    assert result.exit_code == 2 and "holds the input" in result.output, result.output
    assert recipe.read_text() == RECIPE and leftovers(tmp_path) == []
