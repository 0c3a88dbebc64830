"""The request body and its models, as the pipeline sees them: checks that end in a Refusal.

The reading itself is pure (body.py: JSON as Go reads it; policy.py: the decisions); this
module turns their answers into the gateway's refusals, in one place for app.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..keys.model import Identity
from . import policy
from .body import BodyError, no_body_allowed, parse_object
from .errors import Refusal
from .routes import Route


def _bad(reason: str, message: str) -> Refusal:
    return Refusal(400, f"invalid_request:{reason}", message, "bad_request")


def check_head(method: str, body_exists: bool) -> None:
    """From the request head: GET and HEAD carry no body here."""
    if no_body_allowed(method) and body_exists:
        raise _bad("body_not_allowed", f"a {method} request carries no body here")


def check_encoding(route: Route, headers: Mapping[str, str]) -> None:
    """The bytes checked must be the bytes the upstream decodes: no compressed bodies."""
    enc = headers.get("Content-Encoding", "identity").strip().lower()
    if route.model_from == "body" and enc not in ("", "identity"):
        raise _bad(
            "body_encoded", "a compressed request body cannot be inspected: send it uncompressed"
        )


def inspect(route: Route, body: bytes) -> tuple[dict[str, Any], list[str]]:
    """(the object the upstream will act on, the models it names); a 400 Refusal if the
    body cannot be read exactly as the upstream reads it."""
    try:
        doc = parse_object(body)
        return doc, policy.models_in_body(route, doc)
    except BodyError as e:
        raise _bad(e.reason, e.message) from None


def decide_models(
    identity: Identity, route: Route, models: list[str] | None, doc: dict[str, Any] | None
) -> None:
    """Refuse (403; 404 for a model in the path) what the key's model globs do not allow."""
    allowed = identity.models
    if route.model_from == "body":
        assert doc is not None
        decision = policy.decide_body(allowed, route, doc)
    elif route.model_from in ("path", "opaque"):
        decision = policy.decide_models(allowed, models)
    else:
        return  # no model involved, or a listing filtered on the way back
    if decision.allowed:
        return
    named = (models or ["(none given)"])[0]
    if route.model_from == "path":
        # As for a model that does not exist: a key does not learn what else is there.
        raise Refusal(404, decision.reason, f"model {named!r} not found")
    raise Refusal(403, decision.reason, f"key {identity.name!r} may not use model {named!r}")
