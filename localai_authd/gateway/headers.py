"""Which headers cross the gateway, in each direction. Pure.

RFC 9110 §7.6.1: hop-by-hop headers, and every header named in ``Connection``, end here.
The client's credentials never reach the upstream; X-Forwarded-* are ours, never the client's.
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
# Credentials and anything that could carry them; cookies too (no inference server needs one).
CREDENTIALS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})
# Set by us, fresh: a client's own copies are spoofable.
FORWARDING = frozenset(
    {
        "forwarded",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-real-ip",
    }
)
# Recomputed for the new message (aiohttp frames the body itself) or answered by us; the
# request id is ours (the audit record and the upstream's logs must agree on it).
FRAMING = frozenset({"host", "content-length", "expect", "x-request-id"})
# Response headers aiohttp writes itself.
OWN_RESPONSE = frozenset({"date", "server", "content-length"})


def _connection_named(headers: Iterable[tuple[str, str]]) -> set[str]:
    named: set[str] = set()
    for k, v in headers:
        if k.lower() == "connection":
            named.update(t.strip().lower() for t in v.split(",") if t.strip())
    return named


def to_upstream(
    headers: Iterable[tuple[str, str]],
    *,
    upstream_host: str,
    client_ip: str,
    proto: str,
    original_host: str | None,
) -> list[tuple[str, str]]:
    items = list(headers)
    drop = HOP_BY_HOP | CREDENTIALS | FORWARDING | FRAMING | _connection_named(items)
    out = [
        (k, v)
        for k, v in items
        # "X_Api_Key" style names: some servers fold "_" to "-"; nothing legitimate needs them.
        if k.lower() not in drop and "_" not in k
    ]
    out.append(("Host", upstream_host))
    out.append(("X-Forwarded-For", client_ip))
    out.append(("X-Forwarded-Proto", proto))
    if original_host and original_host.isascii() and original_host.isprintable():
        out.append(("X-Forwarded-Host", original_host))
    return out


def to_client(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    items = list(headers)
    drop = HOP_BY_HOP | OWN_RESPONSE | _connection_named(items)
    return [(k, v) for k, v in items if k.lower() not in drop]
