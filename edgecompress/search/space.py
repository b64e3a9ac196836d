"""A trial's values (sampled by Optuna) and the recipe they make.

Choices that are plain scalars are Optuna categories as they are; lists and mappings (``export:
[[onnx], [tflite]]``) are categories by their JSON text, so a study's storage and dashboards
show what was tried. ``values`` always holds the real values, keyed by address.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

from edgecompress.search.schema import Param, SamplerName, apply_values

SCALARS = (str, int, float, bool, type(None))


def _plain(param: Param) -> bool:
    return all(isinstance(c, SCALARS) for c in param.choices or [])


def label(param: Param, value: Any) -> Any:
    """The Optuna category for ``value`` (the value itself, or its JSON text)."""
    if param.choices is None or _plain(param):
        return value
    return json.dumps(value, sort_keys=True)


def _unlabel(param: Param, category: Any) -> Any:
    if _plain(param):
        return category
    return next(c for c in param.choices if json.dumps(c, sort_keys=True) == category)


def suggest(trial, params: list[Param]) -> dict[str, Any]:
    """{address: value} for an Optuna trial (fixed values of an enqueued trial are kept)."""
    values = {}
    for p in params:
        if p.choices is not None:
            categories = [label(p, c) for c in p.choices]
            values[p.address] = _unlabel(p, trial.suggest_categorical(p.address, categories))
        elif p.is_int:
            values[p.address] = trial.suggest_int(
                p.address, p.low, p.high, step=p.step or 1, log=p.log
            )
        else:
            values[p.address] = trial.suggest_float(
                p.address, float(p.low), float(p.high), step=p.step, log=p.log
            )
    return values


def enqueue_points(params: list[Param], start: list[dict], sampler: SamplerName) -> list[dict]:
    """Optuna params of the trials to run first: ``search.start``, then (sampler grid) every
    combination of the grid."""
    by_address = {p.address: p for p in params}
    points = [{a: label(by_address[a], v) for a, v in point.items()} for point in start]
    if sampler == SamplerName.grid:
        axes = [[label(p, v) for v in p.grid()] for p in params]
        points += [dict(zip(by_address, combo, strict=True)) for combo in itertools.product(*axes)]
    return points


def trial_recipe(data: dict, params: list[Param], values: dict[str, Any], name: str) -> dict:
    """The base recipe's data with the trial's values, no search section, named ``name``."""
    out = apply_values(data, values, {p.address: p.wrap for p in params})
    return {"name": name, **{k: v for k, v in out.items() if k not in ("name", "relative_to")}}


def runnable(recipe_data: dict, base_dir: Path) -> dict:
    """``recipe_data`` that runs from any folder: relative paths resolve against the base
    recipe's folder (``relative_to``)."""
    return {**recipe_data, "relative_to": str(Path(base_dir).resolve())}
