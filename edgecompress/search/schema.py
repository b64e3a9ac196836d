"""The ``search:`` section of a recipe: what may vary, what to minimise, how to sample.

A parameter is named by its **address**: the path of a recipe field as recipe errors print it,
``steps[0].prune.amount``, ``export[0].onnx.quantize``, ``export``, ``package.lambda.memory_mb``.
Its value is a list of choices or a range ``{low, high[, step][, log]}`` (integers when low,
high and step are integers). Only ``steps...``, ``export...`` and ``package.lambda.*`` may
vary: the measuring stick (task, bench, cost, gates) stays fixed across a study.

This module knows the syntax and plain-data operations (parse, apply); ``recipe.py`` checks
each address and each choice against the real schema (errors name ``search.space.<address>``).
Torch-free and optuna-free: validating a recipe imports neither.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Objective(str, Enum):
    """What a study minimises; each is read from the trial's deployed variant."""

    accuracy_drop = "accuracy_drop"  # baseline metric - variant metric (higher-is-worse metrics)
    p95_ms = "p95_ms"  # warm p95 latency on this machine
    usd_per_million = "usd_per_million"  # estimated $ per million Lambda invocations
    zip_mib = "zip_mib"  # zipped Lambda bundle (needs package.lambda)


class SamplerName(str, Enum):
    auto = "auto"  # NSGA-II for several objectives, TPE for one
    tpe = "tpe"
    nsga2 = "nsga2"
    random = "random"
    grid = "grid"  # every combination first (choices and stepped ranges only), then random


class SearchSection(BaseModel):
    """``search:``: the space, the objectives and the sampler. The recipe's ``gates:`` are the
    constraints: a trial passes when every gate passes."""

    model_config = ConfigDict(extra="forbid")

    space: dict[str, Any] = Field(
        ..., description="address -> [choices] or {low, high, step, log}", min_length=1
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [Objective.usd_per_million, Objective.accuracy_drop],
        min_length=1,
        description="minimised together (a Pareto front when several)",
    )
    sampler: SamplerName = Field(SamplerName.auto, description="auto: NSGA-II / TPE")
    seed: int | None = Field(None, description="sampler seed (default: the recipe's seed)")
    population_size: int = Field(10, ge=2, description="NSGA-II: trials per generation")
    startup_trials: int = Field(8, ge=1, description="TPE: random trials before modelling")
    trial_timeout_s: float | None = Field(
        None, gt=0, description="a trial running longer is stopped and recorded as failed"
    )
    start: list[dict[str, Any]] = Field(
        default_factory=list, description="points tried first: [{address: value, ...}]"
    )


ADDRESS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])*(\.[A-Za-z_][A-Za-z0-9_-]*(\[\d+\])*)*")
SEARCHABLE = ("steps", "export", "package")
LIST_ENTRIES = ("steps", "export")  # lists of {name: config} whose items may be bare names


class AddressError(ValueError):
    """An address that does not parse or does not point into the recipe."""


def parse_address(address: str) -> tuple[str | int, ...]:
    """``"steps[0].prune.amount"`` -> ``("steps", 0, "prune", "amount")``."""
    if not isinstance(address, str) or not ADDRESS_RE.fullmatch(address):
        raise AddressError(
            "not an address: use field names joined by '.', list items as [i] "
            "(e.g. steps[0].prune.amount, export, package.lambda.memory_mb)"
        )
    path: list[str | int] = []
    for part in address.split("."):
        name, *indexes = re.split(r"\[", part)
        path.append(name)
        path.extend(int(i.rstrip("]")) for i in indexes)
    if path[0] not in SEARCHABLE or (path[0] == "package" and path[1:2] != ["lambda"]):
        raise AddressError(
            "only steps[...], export[...] and package.lambda.* can be searched "
            "(task, bench, cost and gates are the study's fixed measuring stick)"
        )
    if path[0] == "package" and len(path) != 3:
        raise AddressError("give one field of the Lambda target: package.lambda.<field>")
    return tuple(path)


def format_address(path: tuple[str | int, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _child(node: Any, key: str | int, where: str, create: bool) -> Any:
    """``node[key]`` for walking an address; bare step names and null configs become {}."""
    if isinstance(key, int):
        if not isinstance(node, list):
            raise AddressError(f"{where} is not a list")
        if key >= len(node):
            raise AddressError(f"{where} has {len(node)} item(s); there is no [{key}]")
        return node[key]
    if not isinstance(node, dict):
        raise AddressError(f"{where} is not a mapping")
    if key not in node:
        if not create:
            raise AddressError(f"{where} has no {key!r}")
        node[key] = {}
    if node[key] is None:
        node[key] = {}
    return node[key]


def _normalise_entry(parent: list, index: int, name: str, where: str) -> dict:
    """``steps[i]`` / ``export[i]`` addressed by its name: the item must be that step."""
    item = parent[index]
    if isinstance(item, str):
        item = parent[index] = {item: {}}
    if not isinstance(item, dict) or len(item) != 1:
        raise AddressError(f"{where} is not one {{name: config}} item")
    (have,) = item
    if have != name:
        raise AddressError(f"{where} is {have!r}, not {name!r}")
    if item[have] is None:
        item[have] = {}
    return item


def set_at(data: dict, path: tuple[str | int, ...], value: Any) -> None:
    """Put ``value`` at ``path`` in ``data`` (in place). Mappings on the way are created when
    missing (``package.lambda.memory_mb`` without a ``lambda`` section); list items must exist
    and a step or export item must carry the name the address gives it."""
    node: Any = data
    for i, key in enumerate(path[:-1]):
        where = format_address(path[: i + 1])
        nxt = path[i + 1]
        if (
            i == 1
            and path[0] in LIST_ENTRIES
            and isinstance(key, int)
            and isinstance(nxt, str)
            and isinstance(node, list)
            and key < len(node)
        ):
            node = _normalise_entry(node, key, nxt, where)
            continue
        node = _child(node, key, where, create=isinstance(nxt, str))
    last = path[-1]
    where = format_address(path)
    if isinstance(last, int):
        _child(node, last, where, create=False)
    elif not isinstance(node, dict):
        raise AddressError(f"{format_address(path[:-1])} is not a mapping")
    node[last] = copy.deepcopy(value)


def apply_values(data: dict, values: dict[str, Any], wraps: dict[str, bool]) -> dict:
    """A deep copy of ``data`` with each address set to its value (a scalar for a list field
    becomes a one-item list when ``wraps[address]``) and the search section removed."""
    out = copy.deepcopy({k: v for k, v in data.items() if k != "search"})
    for address, value in values.items():
        if wraps.get(address) and not isinstance(value, list):
            value = [value]
        set_at(out, parse_address(address), value)
    return out


@dataclass
class Param:
    """One dimension of the space: ``choices``, or a ``low``..``high`` range."""

    address: str
    path: tuple[str | int, ...]
    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    wrap: bool = False  # the field holds a list: a scalar value becomes a one-item list

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool)
            for v in (self.low, self.high, self.step if self.step is not None else 1)
        )

    def probe_values(self) -> list[Any]:
        """The values validated against the recipe schema: every choice, or both ends."""
        return list(self.choices) if self.choices is not None else [self.low, self.high]

    def contains(self, value: Any) -> bool:
        if self.choices is not None:
            return any(same(value, c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return self.low <= value <= self.high and (not self.is_int or float(value).is_integer())

    def grid(self) -> list[Any] | None:
        """Every value (choices or a stepped range), or None for a continuous range."""
        if self.choices is not None:
            return list(self.choices)
        if self.is_int:
            return list(range(self.low, self.high + 1, self.step or 1))
        if self.step:
            count = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
            return [round(self.low + i * self.step, 12) for i in range(count)]
        return None


def same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


RANGE_KEYS = {"low", "high", "step", "log"}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def parse_param(address: str, spec: Any) -> Param:
    """One ``space`` entry; AddressError (ValueError) with a message for the address."""
    path = parse_address(address)
    if isinstance(spec, list):
        if not spec:
            raise AddressError("give at least one choice")
        if any(same(a, b) for a, b in itertools.combinations(spec, 2)):
            raise AddressError(f"choices repeat a value: {spec!r}")
        return Param(address, path, choices=list(spec))
    if not isinstance(spec, dict):
        raise AddressError(
            f"give a list of choices or a range {{low, high[, step][, log]}}, got {spec!r}"
        )
    unknown = sorted(set(spec) - RANGE_KEYS)
    if unknown:
        raise AddressError(f"unknown range key(s) {unknown}; a range has low, high, step, log")
    missing = [k for k in ("low", "high") if k not in spec]
    if missing:
        raise AddressError(f"a range needs {' and '.join(missing)}")
    low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    if not (_number(low) and _number(high)):
        raise AddressError(f"low and high must be numbers, got {low!r} and {high!r}")
    if low >= high:
        raise AddressError(f"low must be < high, got low {low:g}, high {high:g}")
    if step is not None and (not _number(step) or step <= 0 or step > high - low):
        raise AddressError(f"step must be > 0 and at most high - low, got {step!r}")
    if not isinstance(log, bool):
        raise AddressError(f"log must be true or false, got {log!r}")
    if log and (low <= 0 or step is not None):
        raise AddressError("a log range needs low > 0 and no step")
    return Param(address, path, low=low, high=high, step=step, log=log)


def parse_space(space: dict[str, Any]) -> list[Param]:
    """Every ``space`` entry; AddressError carries ``"<address>: <reason>"``."""
    params = []
    for address, spec in space.items():
        try:
            params.append(parse_param(address, spec))
        except AddressError as exc:
            raise AddressError(f"{address}: {exc}") from None
    return params


def canonical(values: dict[str, Any]) -> str:
    """One string per assignment of values (duplicate trials are found by it)."""
    return json.dumps(values, sort_keys=True, separators=(",", ":"))
