"""Progress bars and logs on stderr (rich); silent with --quiet and in --json mode."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

_QUIET = False
log = logging.getLogger("edgecompress")


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    set_quiet(quiet)
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=False)
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
    if not verbose:  # torch.onnx warns about every torchvision op it cannot register
        logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)


class _Task:
    def __init__(self, progress, task_id):
        self._progress, self._id = progress, task_id

    def advance(self, n: float = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._id, n)

    def update(self, **kwargs) -> None:
        if self._progress is not None:
            self._progress.update(self._id, **kwargs)


@contextlib.contextmanager
def progress(description: str, total: float | None = None) -> Iterator[_Task]:
    """``with progress("training", total=epochs) as bar: bar.advance()`` on stderr."""
    if _QUIET:
        yield _Task(None, None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        yield _Task(bar, bar.add_task(description, total=total))
