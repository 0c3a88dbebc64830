"""Gateway refusals, rendered in the dialect the client speaks.

OpenAI's SDKs show ``error.message`` from ``{"error": {"message", "type", "code"}}``;
Ollama's show the string in ``{"error": "..."}``. Both are given our words unchanged.
"""

from __future__ import annotations

import json

from aiohttp import web

from ..audit import RequestOutcome

REALM = 'Bearer realm="localai-authd"'
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


class Refusal(Exception):
    """Stop the request here with ``status``; ``reason`` is stable (audit, bodies)."""

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        outcome: RequestOutcome = "denied",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.outcome = outcome
        self.headers = headers or []


BASIC_CHALLENGE = 'Basic realm="localai-authd", charset="UTF-8"'


def unauthorized(
    reason: str, message: str, error: str | None = None, basic: bool = False
) -> Refusal:
    # RFC 6750 §3: no error attribute when no credentials were presented at all.
    challenge = REALM if error is None else f'{REALM}, error="{error}"'
    status = 400 if error == "invalid_request" else 401
    outcome: RequestOutcome = "bad_request" if status == 400 else "unauthenticated"
    headers = [("WWW-Authenticate", challenge)]
    if basic:  # RFC 7617 §2.1: where Basic is accepted, say so
        headers.append(("WWW-Authenticate", BASIC_CHALLENGE))
    return Refusal(status, reason, message, outcome, headers)


def render(refusal: Refusal, dialect: str, request_id: str) -> web.Response:
    body: dict[str, object]
    if dialect == "openai":
        body = {
            "error": {
                "message": refusal.message,
                "type": _OPENAI_TYPE.get(refusal.status, "api_error"),
                "code": refusal.reason,
            }
        }
    else:
        body = {"error": refusal.message}
    resp = web.Response(
        status=refusal.status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers={"X-Request-Id": request_id, "Server": SERVER},
    )
    for k, v in refusal.headers:
        resp.headers.add(k, v)
    return resp
