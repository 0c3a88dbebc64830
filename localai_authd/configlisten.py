"""Config of the listeners: [server] listen, the [[listener]] tables, TLS and exposure.

The rule that matters most lives here: a listener beyond loopback must use TLS
(there is no way to run the proxy without it on a non-loopback address).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .configschema import Draft, ListenAddress


@dataclass(frozen=True)
class TLS:
    cert: Path
    key: Path
    client_ca: Path | None = None
    client_crl: Path | None = None
    client_cert: Literal["off", "optional", "required"] = "off"
    client_identity: Literal["cn", "san"] = "cn"  # which part of a certificate names its identity
    require_key_with_cert: bool = False  # the highest setting: certificate AND key


@dataclass(frozen=True)
class Listener:
    address: ListenAddress
    tls: TLS | None = None
    basic_auth: bool = True

    @property
    def host(self) -> str:
        return self.address.host

    @property
    def port(self) -> int:
        return self.address.port

    @property
    def is_loopback(self) -> bool:
        return self.address.is_loopback

    def __str__(self) -> str:
        return ("https://" if self.tls else "http://") + str(self.address)


DEFAULT_LISTENERS = (Listener(ListenAddress("127.0.0.1", 11435)),)


def listeners(d: Draft) -> dict[str, Any]:
    """[server] listen and the [[listener]] tables (--listen replaces both)."""
    server = d.table("server")
    found = [Listener(a) for a in server.get("listen", ())]
    for where, table in d.tables("listener"):
        lst = _listener(d, where, table)
        if lst is not None:
            found.append(lst)
    if "listen" in d.flags:
        found = [Listener(a) for a in d.flags["listen"]]
    if not found and "listen" not in server and "listener" not in d.doc:
        found = list(DEFAULT_LISTENERS)
    if not found:
        d.problems.append("no listener: set [server] listen or add a [[listener]] table")
    _exposure(found, d.problems)
    return {"listen": tuple(found)}


def _listener(d: Draft, where: str, table: Any) -> Listener | None:
    problems = d.problems
    t = d.convert("listener", table, where)
    if not isinstance(table, dict):
        return None
    if "address" not in t:
        if "address" not in table:
            problems.append(f'{where}: address is required, e.g. "127.0.0.1:11435"')
        return None
    tls_keys = (
        "client_ca",
        "client_crl",
        "client_cert",
        "client_identity",
        "require_key_with_cert",
    )
    tls = None
    if "tls_cert" in t and "tls_key" in t:
        tls = TLS(t["tls_cert"], t["tls_key"], **{k: t[k] for k in tls_keys if k in t})
        _check_tls(where, tls, problems)
    elif "tls_cert" in t or "tls_key" in t:
        problems.append(f"{where}: give both tls_cert and tls_key")
    elif any(k in t for k in tls_keys):
        problems.append(f"{where}: client certificates need TLS: set tls_cert and tls_key")
    return Listener(t["address"], tls, t.get("basic_auth", True))


def _check_tls(where: str, tls: TLS, problems: list[str]) -> None:
    for label, p in (
        ("tls_cert", tls.cert),
        ("tls_key", tls.key),
        ("client_ca", tls.client_ca),
        ("client_crl", tls.client_crl),
    ):
        if p is not None and not os.access(p, os.R_OK):
            problems.append(f"{where} {label}: cannot read {p}")
    if tls.client_cert != "off" and tls.client_ca is None:
        problems.append(
            f"{where}: client_cert = {tls.client_cert!r} needs client_ca (the CA "
            "bundle that signs client certificates)"
        )
    if tls.client_cert == "off" and (tls.client_ca or tls.require_key_with_cert):
        problems.append(
            f"{where}: client_ca/require_key_with_cert have no effect while "
            'client_cert = "off"; set client_cert = "optional" or "required"'
        )
    if tls.require_key_with_cert and tls.client_cert != "required":
        problems.append(f'{where}: require_key_with_cert needs client_cert = "required"')


def _exposure(listeners: list[Listener], problems: list[str]) -> None:
    """Binding beyond loopback requires TLS; there is no way around it."""
    for lst in listeners:
        if not lst.is_loopback and lst.tls is None:
            problems.append(
                f"listener {lst.address} is not loopback and has no TLS: a listener beyond "
                "loopback must use TLS. Fix: add tls_cert and tls_key to its [[listener]] "
                "table, or listen on 127.0.0.1 or [::1]"
            )
    addresses = [lst.address for lst in listeners]
    for a in sorted(set(addresses), key=str):
        if addresses.count(a) > 1:
            problems.append(f"listener {a} is configured more than once")
