"""Where edgecompress keeps its caches (wheels, converted tokenizers, ...)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """``$EDGECOMPRESS_CACHE`` or ``$XDG_CACHE_HOME/edgecompress`` (default ~/.cache)."""
    root = os.environ.get("EDGECOMPRESS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "edgecompress"
    )
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
