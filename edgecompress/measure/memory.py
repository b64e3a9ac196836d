"""Memory and sizes: peak RSS of a serving process (reported by the child probe: VmHWM from
/proc/self/status, falling back to ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which Linux
carries over from the parent across fork + exec), model file sizes and zip sizes."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgecompress.errors import CompressError
from edgecompress.measure.coldstart import cold_start_model, run_zip_child

MIB = 1024 * 1024


def file_size(path: Path) -> int:
    path = Path(path)
    if not path.is_file():
        raise CompressError(f"{path}: file not found")
    return path.stat().st_size


def zip_sizes(zip_path: Path) -> dict:
    """Zipped bytes (the file) and unzipped bytes (sum of members), as Lambda counts them."""
    zip_path = Path(zip_path)
    try:
        with zipfile.ZipFile(zip_path) as zf:
            unzipped = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, FileNotFoundError) as exc:
        raise CompressError(f"{zip_path}: not a readable zip: {exc}") from None
    return {"zipped_bytes": zip_path.stat().st_size, "unzipped_bytes": unzipped}


def serving_peak_rss_mib(path: Path, feeds: dict[str, np.ndarray], threads: int = 1) -> float:
    """Peak RSS (MiB) of a fresh process that loads ``path`` and runs it once."""

    return cold_start_model(path, feeds, runs=1, threads=threads)["peak_rss_mib"]


def zip_peak_rss_mib(zip_path: Path, event: dict) -> float:
    """Peak RSS (MiB) of a fresh process that imports the zip's handler and calls it once."""

    return run_zip_child(zip_path, [event])["peak_rss_mib"]


def mib(n_bytes: int | float | None) -> float | None:
    return None if n_bytes is None else n_bytes / MIB
