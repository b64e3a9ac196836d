"""What a served model needs beyond its graph, kept in the ONNX file's own metadata_props:
the model family, the label names (``id2label``) and an image model's preprocessing. The file
carries them to ``compress package lambda``, whatever folder it is copied to."""

from __future__ import annotations

import json
from pathlib import Path

PREFIX = "edgecompress."
KEYS = ("family", "id2label", "image", "generation")  # bundle.extra keys written, JSON-encoded


def serving_facts(extra: dict) -> dict:
    """The serving facts of a bundle's ``extra`` (None and empty values left out)."""
    return {k: extra[k] for k in KEYS if extra.get(k)}


def stamp(path: Path, facts: dict) -> dict:
    """Write ``facts`` into ``path``'s metadata_props (replacing earlier ones); returns them."""
    import onnx

    if not facts:
        return {}
    model = onnx.load(str(path), load_external_data=False)  # external weights stay where they are
    props = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
    del model.metadata_props[:]
    for p in props:
        model.metadata_props.add(key=p.key, value=p.value)
    for key, value in sorted(facts.items()):
        model.metadata_props.add(key=PREFIX + key, value=json.dumps(value, sort_keys=True))
    onnx.save(model, str(path))
    return facts


def read(path: Path) -> dict:
    """The facts :func:`stamp` wrote into an ONNX file ({} for any other file)."""
    import onnx

    if Path(path).suffix != ".onnx":
        return {}
    model = onnx.load(str(path), load_external_data=False)
    facts = {}
    for prop in model.metadata_props:
        key = prop.key[len(PREFIX) :]
        if prop.key.startswith(PREFIX) and key in KEYS:
            try:
                facts[key] = json.loads(prop.value)
            except ValueError:
                continue  # not ours after all
    return facts
