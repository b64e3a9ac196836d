"""``compress doctor``: what is installed, the arm64 self-check per Python, the one-time root
set-up (progress and time on stderr), and exit 1 when a set-up fails."""

from __future__ import annotations

import json

from click.testing import CliRunner

from edgecompress.awslambda import emulate
from edgecompress.cli.main import cli
from edgecompress.errors import ValidationError


def doctor(*args):
    return CliRunner().invoke(cli, ["doctor", *args])


def test_json_names_tools_packages_and_each_python(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECOMPRESS_CACHE", str(tmp_path))  # no roots cached here
    result = doctor("--no-setup", "--json")
    assert result.exit_code == 0, result.output
    facts = json.loads(result.stdout)
    assert facts["packages"]["onnxruntime"] and "qemu-aarch64-static" in facts["tools"]
    assert facts["cache"] == str(tmp_path)
    rows = {row["python"]: row for row in facts["arm64"]}
    assert set(rows) == {"3.11", "3.12", "3.13"}
    assert rows["3.12"]["emulated"] is False and "no arm64 Python 3.12" in rows["3.12"]["why"]
    for python in ("3.11", "3.13"):
        assert rows[python]["emulated"] is False
        assert "qemu" in rows[python]["why"] or "compress doctor" in rows[python]["why"]
    assert not (tmp_path / "rootfs").exists() or not any((tmp_path / "rootfs").iterdir())


def test_setup_reports_progress_and_time_on_stderr(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECOMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(emulate, "qemu_binary", lambda: "/usr/bin/qemu-aarch64-static")
    built = []

    def fake_build(python):  # the real build is minutes and the network: stand it in
        built.append(python)
        raise ValidationError("arm64 emulation: debootstrap trixie failed: no network")

    monkeypatch.setattr(emulate, "ensure_rootfs", fake_build)
    result = doctor("--json")
    assert result.exit_code == 1, result.output
    assert sorted(built) == ["3.11", "3.13"]
    assert "setting up the arm64 Debian trixie root for Python 3.13" in result.stderr
    assert "failed: arm64 emulation: debootstrap trixie failed: no network" in result.stderr
    assert "could not be set up: python3.11" in result.stderr
    rows = {row["python"]: row for row in json.loads(result.stdout)["arm64"]}
    assert "no network" in rows["3.13"]["setup_error"] and rows["3.13"]["emulated"] is False


def test_text_says_static_check_only_without_qemu(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECOMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(emulate, "qemu_binary", lambda: None)
    result = doctor()  # --setup is the default: nothing to set up without qemu
    assert result.exit_code == 0, result.output
    assert "python3.13: static check only: qemu-aarch64-static is not installed" in result.stdout
    assert "python3.12: static check only: Debian ships no arm64 Python 3.12" in result.stdout
    assert "setting up" not in result.stderr
