"""The gateway's refusals: one base that carries status, reason and outcome. Pure.

Every way the gateway stops a request (a target it will not read, a route it does not serve,
credentials it cannot parse, a policy decision, an upstream failure) is a :class:`Refusal`;
``errors.render`` turns one into the answer, and ``Gateway._refuse`` into the audit record.
"""

from __future__ import annotations

from typing import Literal

from ..audit import RequestOutcome

# What happened to a request, as the audit trail (and metrics) name it.
Outcome = RequestOutcome
# Which error shape the client speaks: OpenAI's on /v1/..., Ollama's elsewhere.
Dialect = Literal["openai", "ollama"]


class Refusal(Exception):
    """Stop the request here with ``status``; ``reason`` is stable (audit, bodies).

    ``message`` is for the client; it is redacted once more when rendered, but it should not
    quote what the client sent unless that is known to be harmless.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        message: str,
        outcome: Outcome = "denied",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.outcome: Outcome = outcome
        self.headers = headers or []


class BadTarget(Refusal):
    """The request target is refused (400, 405 or 505): it could be read two ways, or it
    carries what must never be forwarded."""

    def __init__(self, reason: str, message: str, status: int = 400) -> None:
        super().__init__(status, reason, message, "bad_request")


class RouteNotAllowed(Refusal):
    """The canonical path is not on the allow-list (404), or not with this method (405)."""

    def __init__(self, reason: str, message: str, status: int = 404) -> None:
        super().__init__(status, reason, message, "denied")


class MalformedCredentials(Refusal):
    """400 invalid_request: credentials that cannot be read one way only. The message never
    includes the presented value."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "malformed_credentials", message, "bad_request")
