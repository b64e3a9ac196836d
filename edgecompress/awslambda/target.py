"""A Lambda target: architecture, Python runtime, glibc, and an interpreter here that can run
its code (the running one, one on PATH, or a pyenv version; only for the host's architecture).

Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon
Linux 2 (glibc 2.26).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgecompress.errors import ExportError

ARCHES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's arch name -> machine name
MACHINE_ALIASES = {"AMD64": "x86_64", "arm64": "aarch64"}  # Windows / macOS machine names
ELF_MACHINE = {"x86_64": 62, "aarch64": 183}
GLIBC = {"3.11": 26, "3.12": 34, "3.13": 34}  # AL2 for <= 3.11, AL2023 for 3.12+


def arch_of(machine: str) -> str:
    """Lambda's name for a machine (aarch64 -> arm64, AMD64 -> x86_64); others unchanged."""
    machine = MACHINE_ALIASES.get(machine, machine)
    return {v: k for k, v in ARCHES.items()}.get(machine, machine)


def machine_of(arch: str) -> str:
    """The machine name for Lambda's ``arch`` (arm64 -> aarch64); others unchanged."""
    return ARCHES.get(arch, arch)


def host_arch() -> str:
    """This host's architecture in Lambda's names (x86_64 | arm64)."""
    return arch_of(platform.machine())


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
    host = platform.machine()
    if MACHINE_ALIASES.get(host, host) != MACHINE_ALIASES.get(machine, machine):
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


def target_interpreter(arch: str | None, python: str | None) -> str | None:
    """An interpreter here for code built for Lambda ``arch`` / ``python`` (a missing one
    means this host's), or None."""
    machine = machine_of(arch) if arch else platform.machine()
    return interpreter_for(machine, str(python) if python else host_python())


@dataclass(frozen=True)
class Target:
    arch: str  # "arm64" | "x86_64" (Lambda's names)
    python: str  # "3.11" | "3.12" | "3.13"

    def __post_init__(self):
        if self.arch not in ARCHES:
            raise ExportError(f"lambda arch: expected one of {sorted(ARCHES)}, got {self.arch!r}")
        if self.python not in GLIBC:
            raise ExportError(
                f"lambda python: expected one of {sorted(GLIBC)}, got {self.python!r}"
            )

    @property
    def machine(self) -> str:
        return ARCHES[self.arch]

    @property
    def glibc(self) -> tuple[int, int]:
        return (2, GLIBC[self.python])

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def elf_machine(self) -> int:
        return ELF_MACHINE[self.machine]

    @property
    def key(self) -> str:
        return f"{self.machine}-{self.abi}-glibc2.{self.glibc[1]}"

    def platforms(self) -> list[str]:
        """Every manylinux tag the runtime's glibc accepts, plus the legacy alias."""
        tags = [f"manylinux_2_{minor}_{self.machine}" for minor in range(17, self.glibc[1] + 1)]
        return [*tags, f"manylinux2014_{self.machine}"]

    def matches_host(self) -> bool:
        """True when this machine can run the target's code (same arch, and an interpreter of
        the target's Python here)."""
        return self.interpreter() is not None

    def interpreter(self) -> str | None:
        return interpreter_for(self.machine, self.python)
