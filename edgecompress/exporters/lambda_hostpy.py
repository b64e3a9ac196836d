"""Interpreters on this machine that can run a Lambda zip's code, and the runtime interface
client (awslambdaric) for them.

A zip can be self-checked where its architecture is the host's and an interpreter of its
Python version exists here: the running one, one on PATH, or a pyenv version. For another
Python than the running one, awslambdaric (same version as the host's) and its dependencies are
unpacked from wheels for that Python, fetched through the wheel cache.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

RIC_DISTS = ("awslambdaric", "simplejson", "snapshot-restore-py")


def host_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _candidates(python: str) -> list[Path]:
    found = [Path(p) for p in [shutil.which(f"python{python}")] if p and "shims" not in p]
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    if root.is_dir():
        versions = sorted(root.glob(f"{python}.*"), key=_version_key, reverse=True)
        found += [v / "bin" / f"python{python}" for v in versions]
    return [p for p in found if p.is_file() and os.access(p, os.X_OK)]


def _version_key(path: Path) -> tuple:
    return tuple(int(x) if x.isdigit() else -1 for x in path.name.split("."))


@functools.cache
def interpreter_for(machine: str, python: str) -> str | None:
    """A path to a working Python ``python`` (e.g. "3.12") for ``machine``, or None."""
    if platform.machine() != machine:
        return None
    if python == host_python():
        return sys.executable
    for path in _candidates(python):
        probe = subprocess.run(
            [str(path), "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if probe.returncode == 0 and probe.stdout.strip() == python:
            return str(path)
    return None


def ric_versions() -> dict[str, str]:
    """The host's awslambdaric and its dependencies, pinned for other Pythons."""
    from importlib.metadata import PackageNotFoundError, version

    from edgecompress.errors import ValidationError

    try:
        return {name: version(name) for name in RIC_DISTS}
    except PackageNotFoundError as exc:
        raise ValidationError(
            f"lambda self-check: {exc.name} is not installed (pip install awslambdaric)"
        ) from None


def ric_dir_for(python: str, dest: Path) -> Path:
    """A folder holding only awslambdaric and its deps for ``python``: the host's install when
    that is the running Python, else unpacked from cached wheels for ``python``."""
    from edgecompress.exporters import lambda_selfcheck, lambda_wheels

    if python == host_python():
        return lambda_selfcheck.ric_dir(dest)
    target = lambda_wheels.Target(lambda_wheels.arch_of(platform.machine()), python)
    wheels = lambda_wheels.fetch_wheels(target, ric_versions())
    dest.mkdir(parents=True, exist_ok=True)
    lambda_wheels.unpack(wheels, dest)
    return dest


def compile_with(interpreter: str, root: Path) -> bool:
    """``compileall`` (unchecked-hash, ddir /var/task) with another interpreter."""
    proc = subprocess.run(
        [
            interpreter,
            "-I",
            "-m",
            "compileall",
            "-q",
            "-q",
            "-j",
            "1",
            "-d",
            "/var/task",
            "--invalidation-mode",
            "unchecked-hash",
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc.returncode == 0
