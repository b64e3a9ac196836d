"""arm64 under qemu: discovery, the cached Debian roots, the Graviton cpuinfo, the Lambda-like
sysfs, and why emulation is unavailable when it is."""

from __future__ import annotations

import pytest

from edgecompress.awslambda import emulate
from edgecompress.errors import ValidationError
from tests.awslambda.lambda_models import digits_int8_onnx

MALFORMED = ("wrong shape", "wrong dtype (npy)", "missing key", "non-JSON body", "10 MB body")


def emulation_or_skip(python: str) -> emulate.Emulation:
    emu, why = emulate.emulation_for(python, setup=False)
    if emu is None:
        pytest.skip(f"no arm64 emulation for Python {python}: {why}")
    return emu


@pytest.fixture(scope="module")
def digits_int8(tmp_path_factory):
    return digits_int8_onnx(tmp_path_factory.mktemp("digits"))


def test_graviton_cpuinfo_has_the_fields_onnxruntime_reads():
    text = emulate.graviton_cpuinfo(2)
    assert text.count("processor\t:") == 2 and "CPU implementer\t: 0x41" in text
    assert "CPU part\t: 0xd0c" in text and " asimd " in text and " asimddp" in text


def test_command_prefix_and_lambda_sysfs(tmp_path):
    emu = emulate.Emulation("3.13", "/usr/bin/qemu-aarch64-static", tmp_path)
    assert emu.command() == [
        "/usr/bin/qemu-aarch64-static",
        "-L",
        str(tmp_path),
        str(tmp_path / "usr/bin/python3.13"),
    ]
    emu.sysfs = True
    cmd = emu.command()
    assert (
        cmd[:2] == ["unshare", "--mount"]
        and cmd[-4:]
        == emulate.Emulation("3.13", "/usr/bin/qemu-aarch64-static", tmp_path).command()
    )
    assert "mount -t tmpfs" in cmd[cmd.index("-c") + 1]


def test_why_not_python_312_qemu_missing_or_turned_off(monkeypatch, tmp_path):
    assert "no arm64 Python 3.12" in emulate.unavailable("3.12")
    monkeypatch.setenv("EDGECOMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(emulate, "qemu_binary", lambda: None)
    assert "apt-get install qemu-user-static" in emulate.unavailable("3.13")
    assert emulate.emulation_for("3.13") == (None, emulate.unavailable("3.13"))
    monkeypatch.setattr(emulate, "qemu_binary", lambda: "/usr/bin/qemu-aarch64-static")
    assert "compress doctor" in emulate.unavailable("3.11")  # an empty cache: no root yet
    monkeypatch.setenv("EDGECOMPRESS_EMULATION", "0")
    assert emulate.emulation_for("3.13") == (None, "turned off (EDGECOMPRESS_EMULATION=0)")


def test_setup_without_debootstrap_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGECOMPRESS_CACHE", str(tmp_path))
    monkeypatch.setattr(emulate.shutil, "which", lambda name: None)
    with pytest.raises(ValidationError, match="apt-get install debootstrap"):
        emulate.ensure_rootfs("3.13")
    assert not any((tmp_path / "rootfs").iterdir())  # nothing half-built left behind


@pytest.mark.parametrize("python", ["3.13", "3.11"])
def test_the_root_runs_arm64_python_with_graviton_cpuinfo(python):
    emu = emulation_or_skip(python)
    seen = emulate.probe(emu)
    assert seen["machine"] == "aarch64" and seen["python"].startswith(python + ".")
    assert seen["cpu_part_0xd0c"] is True
    assert seen["sys_cpu_possible"] is (not emu.sysfs)
