"""Registries: built-ins, plugins through entry points, broken plugins reported by name."""

from __future__ import annotations

import importlib.metadata

from edgecompress.registry import Registry, StepConfig


class EchoConfig(StepConfig):
    factor: int = 2


def _fake_entry_points(monkeypatch, group, items):
    class FakeEP:
        def __init__(self, name, value):
            self.name, self.value, self.dist = name, value, None

        def load(self):
            module, _, attr = self.value.partition(":")
            return getattr(importlib.import_module(module), attr)

    def entry_points(group=None):
        return [FakeEP(n, v) for n, v in items] if group == reg_group else []

    reg_group = group
    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


TEST_REGISTRY = Registry("compressor", "test.group", ())

PLUGIN_SOURCE = """
from tests.test_registry import TEST_REGISTRY, EchoConfig

@TEST_REGISTRY.register("echo", EchoConfig)
def echo(bundle, config, ctx):
    "Return the bundle unchanged."
    return bundle, {}
"""


def test_plugin_registers_and_broken_plugin_is_reported(monkeypatch, tmp_path):
    (tmp_path / "fake_plugin_mod.py").write_text(PLUGIN_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    _fake_entry_points(
        monkeypatch, "test.group", [("good", "fake_plugin_mod:echo"), ("bad", "missing_mod:x")]
    )
    assert TEST_REGISTRY.names() == ["echo"]
    entry = TEST_REGISTRY.get("echo")
    assert entry.origin.startswith("plugin") and entry.summary == "Return the bundle unchanged."
    assert "bad" in TEST_REGISTRY.plugin_errors
    assert "missing_mod" in TEST_REGISTRY.plugin_errors["bad"]


REQUIRED = {"distill": {"layers": 3}}  # configs with no all-default form


def test_every_registered_config_round_trips_json_and_imports():
    from edgecompress.registry import COMPRESSORS, EXPORTERS

    entries = COMPRESSORS.entries() + EXPORTERS.entries()
    names = {e.name for e in entries}
    assert {"prune", "fuse", "quantize", "distill", "onnx", "tflite"} <= names
    for entry in entries:
        config = entry.config_cls.model_validate(REQUIRED.get(entry.name, {}))
        assert entry.config_cls.from_json(config.to_json()) == config, entry.name
        assert callable(entry.handler) and entry.origin == "built-in"
