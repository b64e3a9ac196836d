"""requirements.txt for a Cloud Functions / Cloud Run bundle: every package pinned to the exact
version that exists for the target runtime (the direct pins and everything they pull in).

The set is resolved with ``pip download --only-binary=:all:`` for the runtime's Python and
glibc (never the host's), and the wheels are kept in ``cache_dir("gcp", "wheels", KEY)``: the
self-check installs exactly these files (``--no-index --no-deps``), and a rebuild needs no
network.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from edgecompress.errors import ExportError
from edgecompress.gcp import target as gcp_target
from edgecompress.paths import cache_dir
from edgecompress.progress import log

WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)-.*\.whl$")


def direct_pins(python: str, text: bool) -> dict[str, str]:
    """What the app imports, pinned for ``python``: functions-framework, onnxruntime, numpy
    (+ tokenizers for text models)."""
    table = gcp_target.PINS[python]
    pins = {
        "functions-framework": gcp_target.FUNCTIONS_FRAMEWORK,
        "onnxruntime": table["onnxruntime"],
        "numpy": table["numpy"],
    }
    if text:
        pins["tokenizers"] = table["tokenizers"]
    return pins


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def resolve(python: str, pins: dict[str, str]) -> tuple[dict[str, str], Path]:
    """({name: version} of the whole set, the folder holding its wheels) for ``python``."""
    key_text = json.dumps(
        {"python": python, "glibc": gcp_target.GLIBC_MINOR, "pins": pins}, sort_keys=True
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    folder = cache_dir("gcp", "wheels", f"cp{python.replace('.', '')}-{key}")
    done = folder / "resolved.json"
    if done.is_file():
        return json.loads(done.read_text()), folder
    with tempfile.TemporaryDirectory(prefix="ec-gcp-req-", dir=folder) as tmp:
        _download(python, pins, Path(tmp))
        resolved = {}
        for wheel in sorted(Path(tmp).glob("*.whl")):
            match = WHEEL.match(wheel.name)
            resolved[canonical(match["name"])] = match["version"]
            os.replace(wheel, folder / wheel.name)
    partial = folder / ".resolved.json.partial"
    partial.write_text(json.dumps(resolved, indent=1, sort_keys=True))
    os.replace(partial, done)
    return resolved, folder


def _download(python: str, pins: dict[str, str], dest: Path) -> None:
    log.info("resolving %s for python%s", ", ".join(f"{k}=={v}" for k, v in pins.items()), python)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--only-binary=:all:",
        "--python-version",
        python,
        "--implementation",
        "cp",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
    ]
    for plat in gcp_target.platforms():
        cmd += ["--platform", plat]
    cmd += [f"{name}=={version}" for name, version in pins.items()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = " ".join(
            line
            for line in (proc.stderr or proc.stdout).strip().splitlines()[-4:]
            if "is ignored" not in line
        )
        raise ExportError(
            f"gcp: cannot resolve {sorted(pins)} for python{python} (manylinux x86_64, glibc "
            f"2.{gcp_target.GLIBC_MINOR}): {tail}"
        )


def requirements_text(resolved: dict[str, str], pins: dict[str, str], runtime: str) -> str:
    """requirements.txt: the direct pins first, then what they pull in, each ``==``."""
    direct = [canonical(n) for n in pins]
    lines = [
        f"# Pinned for the Cloud Functions / Cloud Run {runtime} runtime (manylinux x86_64,",
        f"# glibc 2.{gcp_target.GLIBC_MINOR}) by edgecompress; the app imports:",
        *(f"{n}=={resolved[n]}" for n in direct),
        "# and what those need:",
        *(f"{n}=={v}" for n, v in sorted(resolved.items()) if n not in direct),
    ]
    return "\n".join(lines) + "\n"


def installed_bytes(folder: Path, resolved: dict[str, str]) -> dict[str, int]:
    """Uncompressed size of each resolved package's wheel contents (what the build installs)."""
    sizes = {}
    for wheel in folder.glob("*.whl"):
        match = WHEEL.match(wheel.name)
        name = canonical(match["name"])
        if resolved.get(name) != match["version"]:
            continue
        with zipfile.ZipFile(wheel) as zf:
            sizes[name] = sum(i.file_size for i in zf.infolist())
    return sizes


def wheel_files(folder: Path, resolved: dict[str, str]) -> list[Path]:
    """The cached wheels of exactly the resolved set."""
    files = []
    for wheel in sorted(folder.glob("*.whl")):
        match = WHEEL.match(wheel.name)
        if resolved.get(canonical(match["name"])) == match["version"]:
            files.append(wheel)
    return files
