"""Registries of compressors and exporters: a typed config plus one handler each.

Built-ins register at import; third-party plugins register through the entry-point groups
``edgecompress.compressors`` and ``edgecompress.exporters`` (the entry point's object is
imported, which runs its ``@register_*`` decorators). A broken plugin is reported by name
and never breaks the built-ins.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from importlib import metadata
from typing import Any

from pydantic import BaseModel, ConfigDict

from edgecompress.progress import log


class StepConfig(BaseModel):
    """Base of every compressor/exporter config: typed, validated, JSON round-trippable."""

    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_assignment=True)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str):
        return cls.model_validate_json(text)


@dataclass
class Entry:
    name: str
    config_cls: type[StepConfig]
    handler: Callable[..., Any]
    origin: str  # "built-in" or the plugin's distribution name
    kind: str  # "compressor" | "exporter"

    @property
    def summary(self) -> str:
        doc = (self.handler.__doc__ or self.config_cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


class Registry:
    def __init__(self, kind: str, group: str, builtins: tuple[str, ...]):
        self.kind, self.group, self.builtins = kind, group, builtins
        self._entries: dict[str, Entry] = {}
        self._loaded = False
        self.plugin_errors: dict[str, str] = {}
        self._origin = "built-in"

    def register(self, name: str, config_cls: type[StepConfig]):
        def decorator(fn):
            self._entries[name] = Entry(name, config_cls, fn, self._origin, self.kind)
            return fn

        return decorator

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True

        for module in self.builtins:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:  # a built-in's own dependency is missing: say so
                    raise
        self._load_plugins()

    def _load_plugins(self) -> None:
        # metadata.entry_points is looked up per call, so tests can fake the installed plugins
        for ep in metadata.entry_points(group=self.group):
            self._origin = f"plugin {ep.dist.name if ep.dist else ep.value}"
            try:
                ep.load()
            except Exception as exc:  # a broken plugin must not break the built-ins
                self.plugin_errors[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("%s plugin %r failed to load: %s", self.kind, ep.name, exc)
            finally:
                self._origin = "built-in"

    def get(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise KeyError(name)
        return self._entries[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]


COMPRESSORS = Registry(
    "compressor",
    "edgecompress.compressors",
    (
        "edgecompress.compressors.prune",
        "edgecompress.compressors.fuse",
        "edgecompress.compressors.quantize",
        "edgecompress.compressors.distill",
        "edgecompress.compressors.classifier_head",
        "edgecompress.compressors.cluster",
    ),
)
EXPORTERS = Registry(
    "exporter",
    "edgecompress.exporters",
    ("edgecompress.exporters.onnx.exporter", "edgecompress.exporters.tflite.exporter"),
)


def register_compressor(name: str, config_cls: type[StepConfig]):
    """``@register_compressor("prune", PruneConfig)`` over ``fn(bundle, config, ctx)``."""
    return COMPRESSORS.register(name, config_cls)


def register_exporter(name: str, config_cls: type[StepConfig]):
    """``@register_exporter("onnx", OnnxConfig)`` over ``fn(bundle, config, ctx, out_dir)``."""
    return EXPORTERS.register(name, config_cls)


def enum_values(enum_cls: type[Enum]) -> list[str]:
    return [e.value for e in enum_cls]
