"""Gateway refusals become answers here, and only here, in the dialect the client speaks.

OpenAI's SDKs show ``error.message`` from ``{"error": {"message", "type", "code"}}``;
Ollama's show the string in ``{"error": "..."}``. Both are given our words, with anything that
looks like a credential taken out (a refusal may quote a path, a method or a model name).
"""

from __future__ import annotations

import json
from typing import get_args

from aiohttp import web

from ..keys.verdict import Reason
from ..redact import redact
from .refusal import BadTarget, Dialect, MalformedCredentials, Outcome, Refusal, RouteNotAllowed

__all__ = [
    "BASIC_CHALLENGE",
    "REALM",
    "SERVER",
    "BadTarget",
    "Dialect",
    "MalformedCredentials",
    "Outcome",
    "Refusal",
    "RouteNotAllowed",
    "render",
    "unauthorized",
]

REALM = 'Bearer realm="localai-authd"'
BASIC_CHALLENGE = 'Basic realm="localai-authd", charset="UTF-8"'
SERVER = "localai-authd"  # not aiohttp's "Python/3.x aiohttp/3.y": no versions for scanners
_OPENAI_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    417: "invalid_request_error",
    429: "rate_limit_error",
    505: "invalid_request_error",
}


def challenge(error: str | None = None, basic: bool = False) -> list[tuple[str, str]]:
    """WWW-Authenticate headers. RFC 6750 §3: no error attribute when no credentials were
    presented at all; RFC 7617 §2.1: where Basic is accepted, say so."""
    headers = [("WWW-Authenticate", REALM if error is None else f'{REALM}, error="{error}"')]
    if basic:
        headers.append(("WWW-Authenticate", BASIC_CHALLENGE))
    return headers


def unauthorized(
    reason: str, message: str, error: str | None = None, basic: bool = False
) -> Refusal:
    status = 400 if error == "invalid_request" else 401
    outcome: Outcome = "bad_request" if status == 400 else "unauthenticated"
    return Refusal(status, reason, message, outcome, challenge(error, basic))


# Why a presented credential was refused is the audit trail's business, not the client's:
# "secret_retired" would tell a thief that the key was rotated, "wrong_secret" that a key id
# exists. The client gets OpenAI's own code for all of them.
_CREDENTIAL_REFUSALS = frozenset(get_args(Reason)) - {"ok"}


def render(refusal: Refusal, dialect: Dialect, request_id: str) -> web.Response:
    message = redact(refusal.message)
    body: dict[str, object]
    if dialect == "openai":
        body = {
            "error": {
                "message": message,
                "type": _OPENAI_TYPE.get(refusal.status, "api_error"),
                "code": "invalid_api_key"
                if refusal.reason in _CREDENTIAL_REFUSALS
                else refusal.reason,
            }
        }
    else:
        body = {"error": message}
    resp = web.Response(
        status=refusal.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"X-Request-Id": request_id, "Server": SERVER},
    )
    for k, v in refusal.headers:
        resp.headers.add(k, v)
    if refusal.status in (400, 413, 417, 505):
        resp.force_close()  # the rest of the request can't be trusted to frame right
    return resp
