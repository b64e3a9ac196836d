"""The ``compress`` command: one module per command group (see ``main`` for the group)."""

from edgecompress.cli.main import cli, main

__all__ = ["cli", "main"]
