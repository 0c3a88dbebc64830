"""Which headers cross the gateway, in each direction. Pure.

To the upstream: only the client headers on an allow-list, never its credentials; Host,
X-Forwarded-* and X-Request-Id are ours. To the client: everything but hop-by-hop headers
(RFC 9110 §7.6.1: those, and every header named in ``Connection``, end here).
"""

from __future__ import annotations

from collections.abc import Iterable

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# What the client may send on to the upstream: an allow-list, not a deny-list. A deny-list
# has to know every header some server trusts, and each framework adds its own: gin's
# ClientIP() (Ollama) believes X-Forwarded-For and X-Real-IP, other stacks believe
# X-Client-IP, True-Client-IP, CF-Connecting-IP, Forwarded, X-Original-URL, X-Rewrite-URL,
# X-HTTP-Method-Override, X-Forwarded-Prefix, ... and the next release will believe another.
# Inference requests need none of them; they need the body's type, content negotiation and
# what the OpenAI SDKs send for idempotency and diagnostics. Everything else ends here, so
# a header the upstream might trust can only ever come from us (X-Forwarded-*, Host,
# X-Request-Id) or from this list. Content-Encoding is not on it: aiohttp has already
# decoded the body we inspect and forward.
FORWARDED_FROM_CLIENT = frozenset(
    {
        "accept",
        "accept-encoding",
        "accept-language",
        "cache-control",
        "content-type",
        "user-agent",
        "idempotency-key",
        "openai-organization",
        "openai-project",
        "openai-beta",
        "traceparent",
        "tracestate",
    }
)
# The OpenAI and Anthropic SDKs' telemetry headers (X-Stainless-Lang, -Retry-Count, ...).
FORWARDED_PREFIXES = ("x-stainless-",)


def forwardable(name: str) -> bool:
    """May a client's header of this name reach the upstream?"""
    low = name.lower()
    return low in FORWARDED_FROM_CLIENT or low.startswith(FORWARDED_PREFIXES)


# Response headers aiohttp writes itself.
OWN_RESPONSE = frozenset({"date", "server", "content-length"})


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            named.update(t.strip().lower() for t in v.split(",") if t.strip())
    return named


def from_client(
    headers: Iterable[tuple[str, str]], connection: Iterable[str] = ()
) -> list[tuple[str, str]]:
    """The client's headers that may go on: allowed, and not named in its ``Connection``
    header values (RFC 9110 §7.6.1: hop-by-hop by the client's word)."""
    named = {t.strip().lower() for v in connection for t in v.split(",")}
    return [(k, v) for k, v in headers if forwardable(k) and k.lower() not in named]


def credential_text(client: list[tuple[str, str]], host: str | None) -> str:
    """What of ``from_client``'s headers reaches the upstream as the client chose it, one
    item per line: every value, Host (it becomes X-Forwarded-Host), and the free part of
    names allowed by prefix. What must hold no credential."""
    parts = [v for _, v in client]
    for k, _ in client:
        low = k.lower()
        if low not in FORWARDED_FROM_CLIENT:
            for prefix in FORWARDED_PREFIXES:
                if low.startswith(prefix):
                    parts.append(k[len(prefix) :])
    if host:
        parts.append(host)
    return "\n".join(parts)


def to_upstream(
    client: list[tuple[str, str]],
    *,
    upstream_host: str,
    client_ip: str,
    proto: str,
    original_host: str | None,
) -> list[tuple[str, str]]:
    """``from_client``'s headers, and ours."""
    out = list(client)
    out.append(("Host", upstream_host))
    out.append(("X-Forwarded-For", client_ip))
    out.append(("X-Forwarded-Proto", proto))
    if original_host and original_host.isascii() and original_host.isprintable():
        out.append(("X-Forwarded-Host", original_host))
    return out


def as_json(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``headers`` saying the body is JSON: the gateway read it as JSON whatever the client
    said (``curl -d`` says a form), and an upstream that binds by Content-Type (echo, fiber:
    LocalAI) would read the same bytes as a form, with fields from inside JSON strings."""
    kept = [(k, v) for k, v in headers if k.lower() != "content-type"]
    return [*kept, ("Content-Type", "application/json")]


def to_client(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = list(headers)
    drop = HOP_BY_HOP | OWN_RESPONSE | _connection_named(items)
    return [(k, v) for k, v in items if k.lower() not in drop]
