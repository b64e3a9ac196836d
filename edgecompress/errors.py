"""Domain errors. Each maps to exactly one documented CLI exit code.

0 success; 1 a step failed; 2 usage error (bad flag, invalid recipe); 3 a release gate failed.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_STEP_FAILED = 1
EXIT_USAGE = 2
EXIT_GATE_FAILED = 3


class CompressError(Exception):
    """Base class: a step failed (exit 1)."""

    exit_code = EXIT_STEP_FAILED


class RecipeError(CompressError):
    """An invalid recipe or configuration value (exit 2). The message names file and field."""

    exit_code = EXIT_USAGE


class ModelLoadError(CompressError):
    """A model or weights file is missing, corrupt, or unsafe to load (exit 1)."""


class DataError(CompressError):
    """A dataset could not be loaded or does not fit the model (exit 1)."""


class DataFileError(DataError):
    """A data file (or ``task.data``) is missing, empty or malformed: invalid input (exit 2).
    The message names the file and the field; it is checked before any work starts."""

    exit_code = EXIT_USAGE


class CompressorError(CompressError):
    """A compressor could not be applied to this model (exit 1)."""


class ExportError(CompressError):
    """An exporter could not write or convert the model (exit 1)."""


class ValidationError(CompressError):
    """An exported file does not compute what the torch model computed (exit 1)."""


class BudgetError(CompressError):
    """A deploy bundle does not fit its size budget (exit 1, or 3 when raised as a gate)."""


class OutputExistsError(CompressError):
    """The output folder exists and --force was not given (exit 2, a usage error; nothing is
    touched)."""

    exit_code = EXIT_USAGE


class UnsafeOutputError(CompressError):
    """OUT is a place no output may go: the root, the home folder, the current folder or a
    parent of it, or a folder holding the inputs (exit 2; checked before any work)."""

    exit_code = EXIT_USAGE


class Interrupted(BaseException):
    """SIGTERM (or SIGHUP) arrived: unwinds like Ctrl-C so every cleanup runs, then exits
    128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by signal {signum}")
        self.exit_code = 128 + signum


class GateError(CompressError):
    """One or more release gates failed (exit 3)."""

    exit_code = EXIT_GATE_FAILED

    def __init__(self, message: str, gates: list[dict] | None = None):
        super().__init__(message)
        self.gates = gates or []
