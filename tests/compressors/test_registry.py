"""Every registered compressor imports and its config round-trips through JSON."""

from __future__ import annotations

import pytest

from edgecompress.registry import COMPRESSORS

BUILT_INS = {"prune", "fuse", "quantize", "distill"}
SAMPLES = {
    "prune": {"method": "n:m", "n": 1, "m": 4, "finetune_epochs": 2, "scope": "global"},
    "fuse": {"merge_linears": False},
    "quantize": {"scheme": "int4-weight-only", "group_size": 32, "keep_float": ["head*"],
                 "accuracy_budget": 0.01, "calibration_method": "entropy"},
    "distill": {"student": "edgecompress.zoo:digits_cnn_small", "student_args": {},
                "temperature": 2.0, "embedding_loss": "cosine"},
}  # fmt: skip


def test_built_ins_are_registered():
    assert set(COMPRESSORS.names()) >= BUILT_INS


@pytest.mark.parametrize("name", sorted(BUILT_INS))
def test_config_round_trips_through_json(name):
    entry = COMPRESSORS.get(name)
    for raw in ({} if name != "distill" else {"layers": 2}, SAMPLES[name]):
        cfg = entry.config_cls.model_validate(raw)
        assert entry.config_cls.from_json(cfg.to_json()) == cfg


def test_every_registered_entry_imports_and_documents_itself():
    for entry in COMPRESSORS.entries():
        assert callable(entry.handler) and entry.summary
        for field_name, info in entry.config_cls.model_fields.items():
            assert info.description, f"{entry.name}.{field_name} has no description"
