"""A fresh virtual environment holding exactly a bundle's requirements.txt, for the self-check.

Built with an interpreter of the target runtime's Python, from the cached wheels the
requirements were resolved to (``--no-index --no-deps``, then ``pip check``: a requirement set
that misses a dependency fails here), and kept in ``cache_dir("gcp", "venvs", KEY)`` where
KEY is the sha256 of requirements.txt and the interpreter's version: the next check reuses
it. The venv has no pip of its own: this host's pip installs into it (``pip --python``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from edgecompress.errors import ValidationError
from edgecompress.paths import cache_dir
from edgecompress.progress import log

READY = ".edgecompress-ready"


def interpreter_version(interpreter: str) -> str:
    proc = subprocess.run(
        [interpreter, "-I", "-S", "-c", "import sys; print(sys.version.split()[0])"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.strip()


def venv_key(requirements: str, interpreter: str) -> str:
    text = requirements + "\n" + interpreter_version(interpreter) + "\n" + interpreter
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def venv_python(folder: Path) -> Path:
    return folder / "bin" / "python"


def cached_venv(requirements: str, wheels: list[Path], interpreter: str) -> tuple[Path, bool]:
    """(the venv's python, whether it was reused) for ``requirements`` under ``interpreter``."""
    final = cache_dir("gcp", "venvs") / venv_key(requirements, interpreter)
    if (final / READY).is_file():
        return venv_python(final), True
    building = final.with_name(f"{final.name}.building-{os.getpid()}")
    shutil.rmtree(building, ignore_errors=True)
    try:
        _build(building, wheels, interpreter)
        (building / "requirements.txt").write_text(requirements)
        (building / READY).write_text(interpreter + "\n")
        try:
            os.rename(building, final)
        except OSError:  # another process published the same venv first: use theirs
            if not (final / READY).is_file():
                raise
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return venv_python(final), False


def _run(cmd: list[str], what: str, timeout: float = 900) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-1200:]
        raise ValidationError(f"gcp self-check: {what} failed: {tail}")
    return proc.stdout


def _pip(python: Path) -> list[str]:
    """This host's pip acting on the venv of ``python`` (``pip --python``: the venv is made
    without pip of its own, saving its ensurepip step)."""
    return [sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check"]


def _build(folder: Path, wheels: list[Path], interpreter: str) -> None:
    log.info("gcp self-check: building a venv (%s, %d wheels)", interpreter, len(wheels))
    _run([interpreter, "-m", "venv", "--without-pip", str(folder)], "creating a venv")
    pip = _pip(venv_python(folder))
    _run(
        [*pip, "-q", "install", "--no-index", "--no-deps", *map(str, wheels)],
        "installing the wheels",
    )
    _run([*pip, "check"], "pip check of requirements.txt (a dependency is missing or clashes)")


def freeze(python: Path) -> dict[str, str]:
    """{name: version} installed in the venv."""
    out = _run([*_pip(python), "list", "--format", "freeze"], "pip list")
    pairs = (line.split("==", 1) for line in out.splitlines() if "==" in line)
    return {n.lower().replace("_", "-"): v for n, v in pairs if n not in ("pip", "setuptools")}
