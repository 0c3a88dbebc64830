"""Authorization decisions: pure functions returning a decision with a stable reason.

The reason goes into the 403 body and the audit record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import modelref
from .body import BodyError
from .routes import Route


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "ok", "scope_missing:admin", "model_not_allowed", "model_unknown", ...


OK = Decision(True, "ok")


def decide_route(scopes: tuple[str, ...], route: Route) -> Decision:
    if route.scope not in scopes:
        return Decision(False, f"scope_missing:{route.scope}")
    return OK


def _named(value: Any, field: str) -> str | None:
    """The model a field names; None if it names none (absent, null or "": Go's zero value,
    which Ollama's cmp.Or skips). Anything but a string: Go refuses the body, so do we."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BodyError("model_not_string", f"{field!r} must be a string")
    return value


def models_in_body(route: Route, doc: dict[str, Any]) -> list[str]:
    """Every model the body names in the route's declared fields, in declaration order."""
    found = []
    for f in route.model_fields:
        name = _named(doc.get(f), f)
        if name is not None:
            found.append(name)
    return found


def decide_body(allowed: tuple[str, ...], route: Route, doc: dict[str, Any]) -> Decision:
    """A key limited to ``allowed`` globs (empty: any model) against a parsed body."""
    if not allowed:
        return OK
    for f in route.unchecked:
        if doc.get(f) not in (None, "", {}, []):
            return Decision(False, f"field_not_allowed:{f}")
    for group in route.required:
        if all(_named(doc.get(f), f) is None for f in group):
            return Decision(False, "model_unknown")
    return decide_models(allowed, models_in_body(route, doc))


def decide_models(allowed: tuple[str, ...], models: list[str] | None) -> Decision:
    """``allowed`` globs (empty: any model) against the models a request names, each read
    as an Ollama model reference (see modelref). ``models`` None or empty: the request's
    model could not be read, so a limited key is refused."""
    if not allowed:
        return OK
    if not models:
        return Decision(False, "model_unknown")
    for m in models:
        if not modelref.allowed(m, allowed):
            return Decision(False, "model_not_allowed")
    return OK


def model_in_path(route: Route, path: str) -> list[str] | None:
    head = route.pattern[:-1]
    tail = path[len(head) :]
    return [tail] if tail else None
