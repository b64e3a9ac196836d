"""Resolve, download and cache the wheels a Lambda zip vendors, for the TARGET (never the host).

Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34), python3.11 on Amazon
Linux 2 (glibc 2.26). Wheels are fetched with ``pip download --only-binary=:all:`` and every
manylinux tag that glibc accepts, pinned to versions that exist for the target, and kept in
``cache_dir("wheels", <target>)`` so a rebuild needs no network and vendors the same bytes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgecompress.awslambda.target import Target
from edgecompress.errors import ExportError
from edgecompress.paths import cache_dir
from edgecompress.progress import log

# Versions that exist for each runtime and that were verified to run there (self-check).
# onnxruntime >= 1.17 needs glibc 2.27/2.28, so Amazon Linux 2 (python3.11) gets 1.16.3, which
# was built against numpy 1.x (numpy 2 would fail at import): numpy stays below 2 with it.
PINS: dict[str, dict[str, str]] = {
    "3.11": {
        "onnxruntime": "1.16.3",
        "numpy": "1.26.4",
        "ai-edge-litert": "1.4.0",
        "tokenizers": "0.23.3",
    },
    "3.12": {
        "onnxruntime": "1.32.0",
        "numpy": "2.5.5",
        "ai-edge-litert": "2.3.0",
        "tokenizers": "0.23.3",
    },
    "3.13": {
        "onnxruntime": "1.32.0",
        "numpy": "2.5.5",
        "ai-edge-litert": "2.3.0",
        "tokenizers": "0.23.3",
    },
}
# ai-edge-litert 1.4.0 is the newest with a manylinux_2_17 wheel (glibc <= 2.26) for cp311 on
# x86_64 and aarch64; 2.3.0 (manylinux_2_27) for cp312/cp313 (checked with pip download).
# A numpy built for onnxruntime 1.16 (numpy 1.x ABI) is pinned above; litert takes any.
LITERT_NUMPY = {"3.11": "2.2.6"}


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    path: Path

    @property
    def tags(self) -> tuple[str, str, str]:
        """(python tag, abi tag, platform tags) from the file name."""
        parts = self.path.name[: -len(".whl")].split("-")
        return parts[-3], parts[-2], parts[-1]

    def to_dict(self) -> dict:
        py, abi, plat = self.tags
        return {
            "name": self.name,
            "version": self.version,
            "file": self.path.name,
            "python_tag": py,
            "abi_tag": abi,
            "platform_tag": plat,
        }


def pins_for(target: Target, runtime: str, text: bool) -> dict[str, str]:
    """The pinned requirement set for a bundle: runtime + numpy (+ tokenizers)."""
    table = PINS[target.python]
    pins = {"numpy": table["numpy"]}
    if runtime == "onnxruntime":
        pins["onnxruntime"] = table["onnxruntime"]
    else:
        pins["ai-edge-litert"] = table["ai-edge-litert"]
        pins["numpy"] = LITERT_NUMPY.get(target.python, table["numpy"])
    if text:
        pins["tokenizers"] = table["tokenizers"]
    return pins


def fetch_wheels(target: Target, pins: dict[str, str]) -> list[Wheel]:
    """Each pinned wheel for ``target``: from the cache, else from PyPI into the cache."""

    folder = cache_dir("wheels", target.key)
    return [_cached_or_download(folder, target, name, version) for name, version in pins.items()]


def _read_index(index_path: Path) -> dict:
    """The cache's name==version -> file map; an unreadable one is an empty cache (the wheels
    are fetched again), never an error."""
    try:
        index = json.loads(index_path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        log.warning("wheel cache index %s is unreadable: starting it afresh", index_path)
        return {}
    return index if isinstance(index, dict) else {}


def _write_atomically(path: Path, data: bytes) -> None:
    """``path`` replaced in one step, through a temp file of this process's own: builds running
    side by side (compress search workers) share the cache."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _cached_or_download(folder: Path, target: Target, name: str, version: str) -> Wheel:
    index_path = folder / "index.json"
    key = f"{name}=={version}"
    index = _read_index(index_path)
    if key in index and (folder / index[key]).exists():
        return Wheel(name, version, folder / index[key])
    path = _download(folder, target, name, version)
    index = _read_index(index_path)
    index[key] = path.name
    _write_atomically(index_path, json.dumps(index, indent=1, sort_keys=True).encode())
    return Wheel(name, version, path)


def _download(folder: Path, target: Target, name: str, version: str) -> Path:
    log.info("downloading %s==%s for %s", name, version, target.key)
    with tempfile.TemporaryDirectory(prefix="ec-wheel-") as tmp:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            target.python,
            "--implementation",
            "cp",
            "--abi",
            target.abi,
            "--disable-pip-version-check",
            "-q",
            "-d",
            tmp,
            f"{name}=={version}",
        ]
        for plat in target.platforms():
            cmd += ["--platform", plat]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        files = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(files) != 1:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise ExportError(
                f"lambda: no wheel of {name}=={version} for {target.key} "
                f"({', '.join(target.platforms()[-2:])}): {' '.join(tail)}"
            )
        dest = folder / files[0].name
        _write_atomically(dest, files[0].read_bytes())  # never a half-copied wheel in the cache
        return dest


def check_wheel_tags(wheel: Wheel, target: Target) -> str | None:
    """None when the wheel's tags fit the target's Python and glibc, else what is wrong."""
    py, abi, plat = wheel.tags
    ok_plats = set(target.platforms()) | {"any"}
    if not set(plat.split(".")) & ok_plats:
        return f"{wheel.path.name}: platform {plat} does not run on {target.key}"
    minor = int(target.python.split(".")[1])
    pys = set(py.split("."))
    if target.abi not in pys and not (abi == "abi3" and _abi3_ok(pys, minor)) and "py3" not in pys:
        return f"{wheel.path.name}: python tag {py}/{abi} does not fit {target.abi}"
    return None


def _abi3_ok(pys: set[str], minor: int) -> bool:
    return any(p.startswith("cp3") and int(p[3:]) <= minor for p in pys)


def unpack(wheels: list[Wheel], dest: Path) -> None:
    """Unpack wheels into ``dest`` (the zip root), keeping the executable bit of members."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel.path) as zf:
            for info in zf.infolist():
                target = dest / info.filename
                if info.is_dir():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                if (info.external_attr >> 16) & 0o111:
                    target.chmod(0o755)
