"""Atomic output folders: build beside OUT, rename at the end; never lose a user's files.

OUT is checked before any work: the file-system root, the home folder, the current folder and
its parents, and any folder holding the recipe, model or data are refused (exit 2). An existing
OUT is replaced only with ``force``, and only when edgecompress wrote it (its manifest.json names
the tool), it is empty, or it is a file or symlink (unlinked, never followed). Every exit path
(an error, Ctrl-C, SIGTERM through the CLI, losing a race for OUT) removes the temp folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgecompress.errors import OutputExistsError, UnsafeOutputError

TOOL = "edgecompress"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def written_by_us(folder: Path) -> bool:
    """True when ``folder/manifest.json`` is a JSON object naming edgecompress as its tool."""
    manifest = Path(folder) / "manifest.json"
    try:
        if manifest.is_symlink() or manifest.stat().st_size > 64 << 20:
            return False
        doc = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    tool = doc.get("tool") if isinstance(doc, dict) else None
    return isinstance(tool, dict) and tool.get("name") == TOOL


def check_location(out: Path, protect: Iterable[Path] = ()) -> Path:
    """``out`` made absolute (symlinks at OUT itself not followed); refuses unsafe places."""
    location = Path(os.path.abspath(Path(out).expanduser()))
    real = location.resolve()
    cwd = Path.cwd().resolve()
    if real == Path(real.anchor) or real == Path.home().resolve():
        raise UnsafeOutputError(f"-o {out}: refusing to write the output at {real}")
    if real == cwd or real in cwd.parents:
        raise UnsafeOutputError(
            f"-o {out}: {real} is the current folder or holds it; choose a new folder"
        )
    for path in protect:
        held = Path(path).expanduser().resolve()
        if held == real or real in held.parents:
            raise UnsafeOutputError(f"-o {out}: {real} holds the input {held}; choose another")
    return location


def _describe(folder: Path) -> str:
    names = sorted(p.name for p in folder.iterdir())
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"it holds {shown}, and no manifest.json written by edgecompress"


def check_writable(out: Path, force: bool) -> None:
    """Refuse an existing OUT without ``force``, and with it anything we did not write."""
    if not (out.exists() or out.is_symlink()):
        return
    if not force:
        raise OutputExistsError(f"{out} exists; pass --force to replace it (nothing was changed)")
    if out.is_dir() and not out.is_symlink() and any(out.iterdir()) and not written_by_us(out):
        raise OutputExistsError(
            f"{out}: --force replaces only an output edgecompress wrote or an empty folder; "
            f"{_describe(out)} (nothing was changed)"
        )


def remove_path(path: Path) -> None:
    """Unlink a file or symlink (never follow it); remove a real folder's tree."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _publish(tmp: Path, out: Path, force: bool) -> None:
    check_writable(out, force)  # someone may have made it meanwhile
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the output follows the user's umask
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".{out.name}.old-{tmp.name}"
        out.rename(old)
    try:
        tmp.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        remove_path(old)


@contextlib.contextmanager
def atomic_dir(out: Path, force: bool = False, protect: Iterable[Path] = ()) -> Iterator[Path]:
    """Yield a temp folder beside ``out``; on success it becomes ``out``; on any failure or
    interruption it vanishes and ``out`` is as it was."""
    out = check_location(out, protect)
    check_writable(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
        _publish(tmp, out, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
