"""TLS and mutual TLS on a listener, with real certificates."""

from __future__ import annotations

import base64
import ssl
import warnings
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from localai_authd.config import TLS
from localai_authd.gateway.tls import server_context
from tests.certs import Certs, make_certs
from tests.conftest import GW, GwFactory


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "tls")


def _listener(certs: Certs, **kw: Any) -> dict[str, Any]:
    return {
        "address": "127.0.0.1:1",
        "tls_cert": str(certs.path("server-chain.pem")),
        "tls_key": str(certs.path("server.key")),
        **kw,
    }


async def _tls_gw(make_gw: GwFactory, certs: Certs, **kw: Any) -> GW:
    listener = _listener(certs, **kw)
    tls = TLS(
        Path(listener["tls_cert"]),
        Path(listener["tls_key"]),
        **{
            k: (Path(v) if k in ("client_ca", "client_crl") else v)
            for k, v in kw.items()
            if k != "basic_auth"
        },
    )
    return await make_gw(ssl_context=server_context(tls, "test"), listener=listener)


def _client_ctx(
    certs: Certs, cert: tuple[Path, Path] | None = None, max_version: ssl.TLSVersion | None = None
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.path("ca.pem")))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


async def _get(gw: GW, ctx: ssl.SSLContext, headers: dict[str, str] | None = None) -> int:
    async with (
        aiohttp.ClientSession() as s,
        s.get(gw.url + "/api/tags", ssl=ctx, headers=headers or {}) as r,
    ):
        await r.read()
        return r.status


async def test_tls_with_a_key_and_basic_over_tls(make_gw: GwFactory, certs: Certs) -> None:
    gw = await _tls_gw(make_gw, certs)
    key = await gw.key("laptop")
    assert await _get(gw, _client_ctx(certs), {"Authorization": f"Bearer {key}"}) == 200
    assert await _get(gw, _client_ctx(certs)) == 401
    auth = "Basic " + base64.b64encode(f"laptop:{key}".encode()).decode()
    assert await _get(gw, _client_ctx(certs), {"Authorization": auth}) == 200
    seen = dict((k.lower(), v) for k, v in gw.upstream.seen[0].headers)
    assert seen["x-forwarded-proto"] == "https"


async def test_only_tls_12_and_up(make_gw: GwFactory, certs: Certs) -> None:
    gw = await _tls_gw(make_gw, certs)
    key = await gw.key("k")
    h = {"Authorization": f"Bearer {key}"}
    assert await _get(gw, _client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_2), h) == 200
    with warnings.catch_warnings():  # an obsolete client, on purpose
        warnings.simplefilter("ignore", DeprecationWarning)
        old = _client_ctx(certs, max_version=ssl.TLSVersion.TLSv1_1)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(aiohttp.ClientError):
        await _get(gw, old, h)


async def test_mtls_required(make_gw: GwFactory, certs: Certs) -> None:
    good = certs.client("good", "laptop.example.lan")
    unbound = certs.client("unbound", "stranger.example.lan")
    foreign = certs.client("foreign", "laptop.example.lan", ca=certs.other_ca)
    expired = certs.client("expired", "laptop.example.lan", expired=True)
    revoked = certs.client("revoked", "laptop.example.lan")
    crl = certs.revoke(revoked[0])
    gw = await _tls_gw(
        make_gw,
        certs,
        client_ca=str(certs.path("ca.pem")),
        client_crl=str(crl),
        client_cert="required",
    )
    await gw.key("laptop")
    await gw.store.bind_cert("laptop", "laptop.example.lan")
    assert await _get(gw, _client_ctx(certs, good)) == 200  # the certificate alone suffices
    rec = (await gw.records(1))[-1]
    assert rec["auth"] == "cert" and rec["key"] == "laptop"
    assert await _get(gw, _client_ctx(certs, unbound)) == 401
    for bad in (None, foreign, expired, revoked):  # the handshake fails
        with pytest.raises(aiohttp.ClientError):
            await _get(gw, _client_ctx(certs, bad))
    await gw.store.revoke("laptop")  # a revoked key's certificate no longer works
    assert await _get(gw, _client_ctx(certs, good)) == 401


async def test_mtls_optional_accepts_a_key_instead(make_gw: GwFactory, certs: Certs) -> None:
    good = certs.client("good", "laptop.example.lan")
    gw = await _tls_gw(make_gw, certs, client_ca=str(certs.path("ca.pem")), client_cert="optional")
    key = await gw.key("laptop")
    await gw.store.bind_cert("laptop", "laptop.example.lan")
    assert await _get(gw, _client_ctx(certs), {"x-api-key": key}) == 200
    assert await _get(gw, _client_ctx(certs)) == 401
    assert await _get(gw, _client_ctx(certs, good)) == 200


async def test_certificate_and_key_at_the_highest_setting(make_gw: GwFactory, certs: Certs) -> None:
    good = certs.client("good", "laptop.example.lan")
    gw = await _tls_gw(
        make_gw,
        certs,
        client_ca=str(certs.path("ca.pem")),
        client_cert="required",
        require_key_with_cert=True,
    )
    key = await gw.key("laptop")
    other = await gw.key("other")
    await gw.store.bind_cert("laptop", "laptop.example.lan")
    assert await _get(gw, _client_ctx(certs, good)) == 401
    assert await _get(gw, _client_ctx(certs, good), {"Authorization": f"Bearer {key}"}) == 200
    assert (await gw.records(2))[-1]["auth"] == "cert+key"
    assert await _get(gw, _client_ctx(certs, good), {"Authorization": f"Bearer {other}"}) == 401


async def test_san_identity(make_gw: GwFactory, certs: Certs) -> None:
    by_san = certs.client("san", "ignored-cn", san="agent.example.lan")
    gw = await _tls_gw(
        make_gw,
        certs,
        client_ca=str(certs.path("ca.pem")),
        client_cert="required",
        client_identity="san",
    )
    await gw.key("agent")
    await gw.store.bind_cert("agent", "agent.example.lan")
    assert await _get(gw, _client_ctx(certs, by_san)) == 200
