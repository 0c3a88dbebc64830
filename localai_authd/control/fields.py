"""Decoding the fields of control requests: each refuses a wrong type or an out-of-bounds
value with the field's name (a 400), before the store is touched.

Numbers from JSON can be ``NaN``, ``Infinity`` or ``1e308`` (Python's ``json`` accepts all
three): every duration goes through :func:`~localai_authd.durations.parse_duration`, which
bounds it, and every limit through :func:`~localai_authd.keys.model.limit_problem`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from ..durations import parse_duration
from ..errors import UsageError
from ..keys.changes import UNSET
from ..keys.model import DEFAULT_SCOPES, LIMIT_FIELDS, check_name, limit_problem

NEVER = "never"


def name(raw: object) -> str:
    if not isinstance(raw, str):
        raise UsageError("field 'name' must be a string")
    problem = check_name(raw)
    if problem:
        raise UsageError(problem)
    return raw


def str_list(body: Mapping[str, Any], field: str) -> tuple[str, ...] | None:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UsageError(f"field {field!r} must be a list of strings")
    return tuple(value)


def _duration(value: object, field: str) -> float:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise UsageError(f'field {field!r} must be a duration like "30d" or a number of seconds')
    try:
        return parse_duration(value)
    except ValueError as e:
        raise UsageError(f"field {field!r}: {e}") from e


def seconds(body: Mapping[str, Any], field: str) -> float | None:
    value = body.get(field)
    return None if value is None else _duration(value, field)


def flag(body: Mapping[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise UsageError(f"field {field!r} must be true or false")
    return value


def expires(body: Mapping[str, Any]) -> float | None:
    """An absolute expiry from a duration from now; absent or null: none."""
    s = seconds(body, "expires")
    return None if s is None else time.time() + s


def expires_change(body: Mapping[str, Any]) -> Any:
    """For an edit: UNSET if absent, None for "never", else an absolute time."""
    if "expires" not in body or body["expires"] is None:
        return UNSET
    if body["expires"] == NEVER:
        return None
    return expires(body)


def grants(body: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    scopes = str_list(body, "scopes")
    return (DEFAULT_SCOPES if scopes is None else scopes), (str_list(body, "models") or ())


def limits(body: Mapping[str, Any]) -> dict[str, Any]:
    """``{"limits": {field: value or null}}``: the limits named, null meaning "back to the
    config default"; ``max_keep_alive`` also takes a duration."""
    raw = body.get("limits")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UsageError("field 'limits' must be an object")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in LIMIT_FIELDS:
            raise UsageError(
                f"unknown limit {str(key)[:64]!r}: known limits are {', '.join(LIMIT_FIELDS)}"
            )
        if key == "max_keep_alive" and value is not None:
            value = _duration(value, "limits.max_keep_alive")
        problem = limit_problem(key, value)
        if problem:
            raise UsageError(f"field 'limits': {problem}")
        out[key] = value
    return out
