"""How a pydantic validation error is worded for a user: the file, the field path as written
in YAML (``steps[1].prune.amount``), the reason in plain words ("must be < 1, got 1.5"), and
for an unknown field the closest known one."""

from __future__ import annotations

import difflib

from pydantic import BaseModel, ValidationError


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_BOUNDS = {
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
}


def _message(err: dict, known_fields: list[str]) -> str:
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        bound = ctx[key]
        msg = (
            f"must be {op} {bound:g}" if isinstance(bound, int | float) else f"must be {op} {bound}"
        )
    elif kind == "extra_forbidden":
        field = str(err["loc"][-1])
        close = difflib.get_close_matches(field, known_fields, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown field{hint}; known: {', '.join(known_fields)}"
    elif kind == "missing":
        return "required field missing"
    else:
        msg = err["msg"][0].lower() + err["msg"][1:]
        msg = msg.removeprefix("value error, ")
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and kind != "missing":
        shown = repr(value)
        msg += (
            f", got {shown[:60]}... ({len(shown):,} characters)"
            if len(shown) > 80
            else (f", got {shown}")
        )
    return msg


def _fields_at(model_cls, loc: tuple) -> list[str]:
    """Field names of the (sub)model the error location points into, for suggestions."""
    cls = model_cls
    for part in loc[:-1]:
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            break
        ann = field.annotation
        for cand in getattr(ann, "__args__", ()) or (ann,):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                cls = cand
                break
    fields = getattr(cls, "model_fields", {})
    return sorted(f.alias or n for n, f in fields.items() if not f.exclude)


def error_message(err: dict) -> str:
    """One pydantic error worded as in a recipe error ("must be > 0, got 0.0")."""
    return _message(err, [])


def format_errors(source: str, exc: ValidationError, model_cls, prefix: tuple = ()) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(prefix) + tuple(err["loc"])
        lines.append(f"{source}: {_loc(loc)}: {_message(err, _fields_at(model_cls, err['loc']))}")
    return "\n".join(lines)
