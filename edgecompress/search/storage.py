"""Where a study lives, and the lock that keeps the trial count exact.

- default: an Optuna journal file in OUT (``OUT/study.journal``): append-only, safe for several
  processes on one machine, and what a rerun of the same command resumes;
- ``--storage PATH`` (no ``://``): a journal file elsewhere, e.g. on a shared file system that
  several machines mount (Optuna's journal uses a lock file beside it; NFSv3+ is fine);
- ``--storage sqlite:///F.db``, ``postgresql://...``, ``mysql://...``: an Optuna RDB storage
  (PostgreSQL or MySQL for many machines; SQLite serialises writers: one machine only).

Workers take ``count_lock`` around "count the trials, ask for one", so ``--trials N`` is exact
for every worker that shares the lock: all workers of a journal or SQLite file (the lock file
sits beside it), and the workers of one machine for a database server (then machines that ask
at the same instant may start up to one extra trial each).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgecompress.errors import RecipeError

JOURNAL_NAME = "study.journal"
RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "oracle", "mssql")


@dataclass(frozen=True)
class StorageSpec:
    """A storage as given (``url``) and what it is: ``journal`` (a file) or ``rdb``."""

    kind: str
    url: str  # an RDB URL, or the absolute path of a journal file
    lock_base: str  # the count lock is this path + ".count.lock"

    @property
    def shown(self) -> str:
        """The URL with any password replaced by ***."""
        return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", self.url)


def resolve_storage(storage: str | None, out: Path) -> StorageSpec:
    """``--storage`` (or None: the journal in OUT) as a StorageSpec; exit 2 when unusable."""
    out = Path(out).resolve()
    if storage is None:
        path = out / JOURNAL_NAME
        return StorageSpec("journal", str(path), str(path))
    if "://" not in storage:
        path = Path(storage).expanduser().resolve()
        if path.is_dir():
            raise RecipeError(f"--storage {storage}: a folder; give a journal file's path")
        return StorageSpec("journal", str(path), str(path))
    scheme = storage.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme not in RDB_SCHEMES:
        raise RecipeError(
            f"--storage {storage}: unknown scheme {scheme!r}; give a journal file path or an "
            f"Optuna RDB URL ({', '.join(RDB_SCHEMES[:3])}, ...)"
        )
    if scheme == "sqlite":
        db = storage.split("sqlite:///", 1)[-1]
        lock = str(Path(db).expanduser().resolve()) if db and db != ":memory:" else None
        if lock is None:
            raise RecipeError(f"--storage {storage}: an in-memory database cannot be shared")
        return StorageSpec("rdb", storage, lock)
    return StorageSpec("rdb", storage, str(out / ".study"))


def open_storage(spec: StorageSpec):
    """The Optuna storage object for ``spec`` (imports optuna)."""
    import optuna

    if spec.kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        Path(spec.url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(spec.url))
    return optuna.storages.RDBStorage(spec.url, engine_kwargs=_engine_kwargs(spec.url))


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # wait for the other workers' writes
    return {"pool_pre_ping": True}


@contextlib.contextmanager
def count_lock(spec: StorageSpec) -> Iterator[None]:
    """Held while a worker counts the trials and asks for the next one."""
    from optuna.storages.journal import JournalFileOpenLock

    Path(spec.lock_base).parent.mkdir(parents=True, exist_ok=True)
    lock = JournalFileOpenLock(spec.lock_base + ".count", grace_period=60)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
