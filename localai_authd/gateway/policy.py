"""Authorization decisions: pure functions returning a decision with a stable reason.

The reason goes into the 403 body and the audit record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from .routes import Route


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "ok", "scope_missing:admin", "model_not_allowed", "model_unknown"


OK = Decision(True, "ok")


def decide_route(scopes: tuple[str, ...], route: Route) -> Decision:
    if route.scope not in scopes:
        return Decision(False, f"scope_missing:{route.scope}")
    return OK


def decide_models(allowed: tuple[str, ...], models: list[str] | None) -> Decision:
    """``allowed`` globs (empty: any model) against the models a request names.

    ``models`` None means the request's model could not be read: deny if the key is limited.
    """
    if not allowed:
        return OK
    if not models:
        return Decision(False, "model_unknown")
    for m in models:
        if not any(fnmatchcase(m, g) for g in allowed):
            return Decision(False, "model_not_allowed")
    return OK


def models_in_body(body: bytes, route_path: str) -> list[str] | None:
    """The model names a JSON request body refers to, or None if it names none we can read."""
    try:
        doc: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    if route_path == "/api/copy":
        names = [doc.get("source"), doc.get("destination")]
    else:
        names = [doc.get("model") if doc.get("model") is not None else doc.get("name")]
    found = [n for n in names if isinstance(n, str) and n]
    return found if len(found) == len(names) else None


def model_in_path(route: Route, path: str) -> list[str] | None:
    head = route.pattern[:-1]
    tail = path[len(head) :]
    return [tail] if tail else None
