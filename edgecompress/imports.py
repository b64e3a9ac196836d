"""Resolve ``pkg.module:attribute`` references from recipes."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from edgecompress.errors import ModelLoadError


def import_object(ref: str, what: str = "object", search_dir: Path | None = None) -> Any:
    """Import ``pkg.module:attr``. ``search_dir`` (a recipe's folder) is searched too, after the
    installed packages: a module beside a recipe can add names, never shadow a library."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ModelLoadError(f"{what} {ref!r}: expected 'pkg.module:function'")
    if search_dir is not None and str(search_dir) not in sys.path:
        sys.path.append(str(search_dir))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelLoadError(
            f"{what} {ref!r}: cannot import module {module_name!r}: {exc}"
        ) from exc
    try:
        obj = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ModelLoadError(f"{what} {ref!r}: module {module_name!r} has no {attr!r}") from None
    return obj
