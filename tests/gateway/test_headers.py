"""Which client headers reach the upstream: only the allow-list, whatever the spelling.

The spoofable list below is what proxies, CDNs and web frameworks (gin's ClientIP() in
Ollama reads X-Forwarded-For and X-Real-IP) believe about the client, the URL or the method.
Each is sent to the running gateway in several spellings; none may reach the upstream.
"""

from __future__ import annotations

import pytest

from localai_authd.gateway import headers
from tests.conftest import GW, raw_request, status_of

SPOOFABLE = [
    "X-Client-IP",
    "True-Client-IP",
    "X-Original-URL",
    "X-Rewrite-URL",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    "X-Forwarded-Prefix",
    "X-Forwarded-Server",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Forwarded-Port",
    "X-Forwarded-Scheme",
    "X-Forwarded-Ssl",
    "X-Forwarded-Uri",
    "X-Forwarded-Path",
    "X-Original-Forwarded-For",
    "Forwarded",
    "X-Real-IP",
    "X-Cluster-Client-IP",
    "Client-IP",
    "CF-Connecting-IP",
    "Fastly-Client-IP",
    "X-ProxyUser-Ip",
    "X-Original-Host",
    "X-Host",
    "X-Original-Method",
    "X-Original-URI",
    "X-Url-Scheme",
    "X-Scheme",
    "Front-End-Https",
    "X-Remote-IP",
    "X-Remote-Addr",
    "X-Remote-User",
    "Remote-User",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Authenticated-User",
    "X-WEBAUTH-USER",
    "Api-Key",
    "Proxy-Authorization",
    "Cookie",
    "Cookie2",
    "HTTP2-Settings",
    "Proxy-Connection",
    "Keep-Alive",
    "Upgrade",
    "TE",
    "Trailer",
    "Content-Encoding",
    "X-Request-Id",
    "X-Correlation-Id",
    "X-Envoy-Original-Path",
    "X-Envoy-External-Address",
    "X-Ollama-Host",
]


def _spellings(name: str) -> list[str]:
    """Case variants, and "_" for "-" (some servers fold one into the other)."""
    return sorted({name, name.lower(), name.upper(), name.replace("-", "_"), name.swapcase()})


def test_the_allow_list_keeps_what_clients_need_and_nothing_of_the_spoofable_list() -> None:
    for name in [*SPOOFABLE, "Authorization", "X-Api-Key", "Host", "Content-Length"]:
        for spelled in _spellings(name):
            assert not headers.forwardable(spelled), spelled
    for name in ("Content-Type", "accept", "User-Agent", "X-Stainless-Lang", "OpenAI-Beta"):
        assert headers.forwardable(name), name


@pytest.mark.parametrize("name", SPOOFABLE)
async def test_spoofable_headers_never_reach_the_upstream(gw: GW, name: str) -> None:
    key = await gw.key()
    spellings = _spellings(name)
    head = "".join(f"{s}: spoof-{i}\r\n" for i, s in enumerate(spellings))
    req = (
        "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\n{head}Content-Type: application/json\r\n"
        'Content-Length: 33\r\n\r\n{"model":"llama3","stream":false}'
    ).encode()
    resp = await raw_request(gw.port, req)
    if name == "Content-Encoding":  # refused outright on model routes (the body check)
        assert status_of(resp) == 400 and gw.upstream.seen == []
        return
    assert status_of(resp) == 200, resp[:300]
    seen = gw.upstream.seen[0]
    assert not [v for _, v in seen.headers if "spoof" in v], seen.headers
    forwarded = dict((k.lower(), v) for k, v in seen.headers)
    assert forwarded["x-forwarded-for"] == "127.0.0.1"  # ours, the only one
    assert forwarded["content-type"] == "application/json"


@pytest.mark.parametrize(
    "line",
    [
        b"X-Real-IP : 6.6.6.6\r\n",  # space before the colon
        b" X-Real-IP: 6.6.6.6\r\n",  # leading space: an obs-fold of the previous line
        b"\tX-Real-IP: 6.6.6.6\r\n",
        b"X-Real-IP\t: 6.6.6.6\r\n",
        b"X Real IP: 6.6.6.6\r\n",
    ],
)
async def test_whitespace_spellings_are_refused_or_dropped(gw: GW, line: bytes) -> None:
    key = await gw.key()
    req = (
        b"POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
        + key.encode()
        + b"\r\n"
        + line
        + b'Content-Length: 33\r\n\r\n{"model":"llama3","stream":false}'
    )
    resp = await raw_request(gw.port, req)
    assert status_of(resp) in (200, 400), resp[:300]
    for seen in gw.upstream.seen:
        assert not [v for _, v in seen.headers if "6.6.6.6" in v], seen.headers


async def test_headers_named_in_connection_are_not_forwarded_even_if_allowed(gw: GW) -> None:
    key = await gw.key()
    req = (
        "POST /api/generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nConnection: keep-alive, User-Agent\r\n"
        "User-Agent: hop\r\n"
        'Content-Length: 33\r\n\r\n{"model":"llama3","stream":false}'
    ).encode()
    assert status_of(await raw_request(gw.port, req)) == 200
    assert "hop" not in [v for _, v in gw.upstream.seen[0].headers]
