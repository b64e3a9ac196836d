"""Lambda alias moves for A/B (canary) releases: publish a version, route a share of an
alias's traffic to it (the alias's RoutingConfig ``AdditionalVersionWeights``), promote it to
the alias's primary version, or roll back to the version before.

The version to roll back to is kept in the alias itself (its Description holds
``edgecompress previous=<version>``), so promote and rollback need nothing but the function
and alias names, from any machine.

Public API: ``publish(client, name)``, ``alias_state(client, name, alias)``,
``point(client, name, alias, version)``, ``canary(client, name, alias, version, percent)``,
``promote(client, name, alias)``, ``rollback(client, name, alias)``.
"""

from __future__ import annotations

import re

from edgecompress.errors import ExportError

TAG = "edgecompress"
_PREVIOUS = re.compile(r"\bprevious=(\d+)\b")


def publish(client, name: str, description: str = "") -> str:
    """Publish $LATEST as a new version; its number."""
    return client.publish_version(FunctionName=name, Description=description)["Version"]


def _get(client, name: str, alias: str) -> dict | None:
    try:
        return client.get_alias(FunctionName=name, Name=alias)
    except client.exceptions.ResourceNotFoundException:
        return None


def _state(raw: dict) -> dict:
    weights = ((raw.get("RoutingConfig") or {}).get("AdditionalVersionWeights")) or {}
    match = _PREVIOUS.search(raw.get("Description") or "")
    return {
        "name": raw["Name"],
        "arn": raw.get("AliasArn"),
        "function_version": raw["FunctionVersion"],
        "routing": {str(v): float(w) for v, w in weights.items()},
        "previous_version": match.group(1) if match else None,
        "description": raw.get("Description") or "",
    }


def alias_state(client, name: str, alias: str) -> dict | None:
    """The alias as Lambda reports it now (None when it does not exist)."""
    raw = _get(client, name, alias)
    return None if raw is None else _state(raw)


def require(client, name: str, alias: str) -> dict:
    state = alias_state(client, name, alias)
    if state is None:
        raise ExportError(f"deploy: {name} has no alias {alias!r}; deploy with --alias first")
    return state


def _update(client, name, alias, version, weights, description) -> dict:
    raw = client.update_alias(
        FunctionName=name,
        Name=alias,
        FunctionVersion=version,
        Description=description,
        RoutingConfig={"AdditionalVersionWeights": weights},
    )
    return _state(raw)


def point(client, name: str, alias: str, version: str) -> dict:
    """The alias sends all its traffic to ``version`` (created when missing)."""
    state = alias_state(client, name, alias)
    if state is None:
        raw = client.create_alias(
            FunctionName=name, Name=alias, FunctionVersion=version, Description=TAG
        )
        return _state(raw)
    if state["function_version"] == version and not state["routing"]:
        return state
    note = f"{TAG} previous={state['function_version']}"
    return _update(client, name, alias, version, {}, note)


def canary(client, name: str, alias: str, version: str, percent: float) -> dict:
    """``percent`` % of the alias's traffic to ``version``, the rest to its current version."""
    state = require(client, name, alias)
    current = state["function_version"]
    if version == current:
        raise ExportError(
            f"deploy: alias {alias!r} already serves version {version} (the code and "
            "configuration did not change): nothing to canary"
        )
    note = f"{TAG} canary={version} previous={current}"
    return _update(client, name, alias, current, {version: round(percent / 100, 6)}, note)


def promote(client, name: str, alias: str) -> dict:
    """The canary version becomes the alias's only version."""
    state = require(client, name, alias)
    if not state["routing"]:
        raise ExportError(
            f"deploy: alias {alias!r} has no canary to promote (it serves version "
            f"{state['function_version']} only)"
        )
    (version,) = state["routing"]
    note = f"{TAG} previous={state['function_version']}"
    return _update(client, name, alias, version, {}, note)


def rollback(client, name: str, alias: str) -> dict:
    """Stop a canary (all traffic back to the primary), or, when none runs, point the alias
    back at the version it served before the last promote / deploy."""
    state = require(client, name, alias)
    current = state["function_version"]
    if state["routing"]:
        (version,) = state["routing"]
        return _update(client, name, alias, current, {}, f"{TAG} rolled back canary={version}")
    previous = state["previous_version"]
    if previous is None:
        raise ExportError(
            f"deploy: alias {alias!r} records no previous version to roll back to "
            f"(it serves version {current})"
        )
    return _update(client, name, alias, previous, {}, f"{TAG} rolled back from={current}")
