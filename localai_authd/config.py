"""TOML → frozen dataclasses. Every key validated; every problem collected, then one ConfigError.

The keys and their converters are in :mod:`configschema`; this module assembles them and
enforces the rules that span keys (exposure: beyond loopback only with TLS).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .configschema import (
    ARRAY_SECTIONS,
    SCHEMA,
    ListenAddress,
    parse_listen,
    parse_upstream_url,
)
from .configschema import _keyring_backend as parse_keyring_backend
from .configschema import _listen_list as parse_listen_list
from .configschema import _path as parse_path
from .errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:11435"
DEFAULT_UPSTREAM = "http://127.0.0.1:11434"
DEFAULT_STATE_DIR = "/var/lib/localai-authd"
DEFAULT_SOCKET = "/run/localai-authd/control.sock"
__all__ = [
    "TLS",
    "Config",
    "ListenAddress",
    "Listener",
    "Tokens",
    "Upstream",
    "build",
    "load",
    "parse_listen",
]


@dataclass(frozen=True)
class TLS:
    cert: Path
    key: Path
    client_ca: Path | None = None
    client_crl: Path | None = None
    client_cert: str = "off"  # off | optional | required
    client_identity: str = "cn"  # which part of a client certificate names its identity
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


@dataclass(frozen=True)
class Upstream:
    url: str  # scheme://host:port, no path
    prefix: str = ""  # "" serves at the root; "/gpu2" serves /gpu2/... as /... upstream
    first_byte_timeout: float = 600.0
    idle_timeout: float = 300.0
    connect_timeout: float = 10.0
    key_name: str = ""  # the upstream's own API key, by name in the keyring ("" = none)

    @property
    def host_header(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class Tokens:
    exchange: bool = True  # a key holder may trade its key for a token at the gateway
    default_ttl: float = 3600.0
    max_ttl: float = 86400.0
    leeway: float = 30.0  # clock skew tolerated on expiry


@dataclass(frozen=True)
class Config:
    listen: tuple[Listener, ...] = (Listener(ListenAddress("127.0.0.1", 11435)),)
    upstreams: tuple[Upstream, ...] = (Upstream(DEFAULT_UPSTREAM),)
    tokens: Tokens = Tokens()
    max_body_bytes: int = 32 * 1024 * 1024
    max_upload_bytes: int = 64 * 1024**3
    drain_timeout: float = 30.0
    state_dir: Path = Path(DEFAULT_STATE_DIR)
    control_socket: Path = Path(DEFAULT_SOCKET)
    admin_group: str = "localai-admin"
    control_max_request_bytes: int = 64 * 1024
    control_request_timeout: float = 10.0
    keyring_backend: str = "auto"
    keyring_credential: str = "localai-authd.keyring-key"
    audit_file: Path | None = None  # None: no file; see resolve_audit_file
    audit_log: bool = True
    log_level: str = "info"
    source: str = "<defaults>"
    extra: Mapping[str, Any] = field(default_factory=dict)


def _unknown(where: str, key: str, known: list[str]) -> str:
    hint = difflib.get_close_matches(key, known, n=1)
    did = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}"
    return f"{where}: unknown key {key!r}{did}"


def _section(
    name: str, table: Any, problems: list[str], where: str | None = None
) -> dict[str, Any]:
    where = where or f"[{name}]"
    out: dict[str, Any] = {}
    if not isinstance(table, dict):
        problems.append(f"{where}: expected a table")
        return out
    schema = SCHEMA[name]
    for key, value in table.items():
        conv = schema.get(key)
        if conv is None:
            problems.append(_unknown(where, key, list(schema)))
            continue
        try:
            out[key] = conv(value)
        except ValueError as e:
            problems.append(f"{where} {key}: {e}")
    return out


def _tables(doc: Mapping[str, Any], name: str, problems: list[str]) -> list[tuple[str, Any]]:
    raw = doc.get(name, [])
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list):
        problems.append(f"[[{name}]]: expected one or more [[{name}]] tables")
        return []
    return [(f"[[{name}]] #{n}", t) for n, t in enumerate(raw, 1)]


def _parse_overrides(overrides: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Command-line flags, in the same shape as the file's keys (flags win)."""
    out: dict[str, Any] = {}
    for flag, conv in (
        ("listen", parse_listen_list),
        ("upstream", parse_upstream_url),
        ("state_dir", parse_path),
        ("control_socket", parse_path),
        ("keyring_backend", parse_keyring_backend),
    ):
        v = overrides.get(flag)
        if v in (None, [], ()):
            continue
        try:
            out[flag] = conv(list(v) if isinstance(v, tuple) else v)
        except ValueError as e:
            problems.append(f"--{flag.replace('_', '-')}: {e}")
    return out


def _listener(where: str, table: Any, problems: list[str]) -> Listener | None:
    d = _section("listener", table, problems, where)
    if not isinstance(table, dict):
        return None
    if "address" not in d:
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
    if "tls_cert" in d and "tls_key" in d:
        tls = TLS(d["tls_cert"], d["tls_key"], **{k: d[k] for k in tls_keys if k in d})
        _check_tls(where, tls, problems)
    elif "tls_cert" in d or "tls_key" in d:
        problems.append(f"{where}: give both tls_cert and tls_key")
    elif any(k in d for k in tls_keys):
        problems.append(f"{where}: client certificates need TLS: set tls_cert and tls_key")
    return Listener(d["address"], tls, d.get("basic_auth", True))


def _check_tls(where: str, tls: TLS, problems: list[str]) -> None:
    for label, path in (
        ("tls_cert", tls.cert),
        ("tls_key", tls.key),
        ("client_ca", tls.client_ca),
        ("client_crl", tls.client_crl),
    ):
        if path is not None and not os.access(path, os.R_OK):
            problems.append(f"{where} {label}: cannot read {path}")
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
    """PRODUCT.md: binding beyond loopback requires TLS; there is no way around it."""
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


def build(
    doc: Mapping[str, Any], source: str, overrides: Mapping[str, Any] | None = None
) -> Config:
    problems: list[str] = []
    for name in doc:
        if name not in SCHEMA:
            known = [f"[[{s}]]" if s in ARRAY_SECTIONS else f"[{s}]" for s in SCHEMA]
            problems.append(
                _unknown("top level", name, known).replace("unknown key", "unknown section")
            )
    single = {n: _section(n, doc.get(n, {}), problems) for n in SCHEMA if n not in ARRAY_SECTIONS}
    server, control, keyring_, state, audit, log, tokens = (
        single[n] for n in ("server", "control", "keyring", "state", "audit", "log", "tokens")
    )
    flags = _parse_overrides(overrides or {}, problems)

    listeners = [Listener(a) for a in server.get("listen", ())]
    for where, table in _tables(doc, "listener", problems):
        lst = _listener(where, table, problems)
        if lst is not None:
            listeners.append(lst)
    if "listen" in flags:
        listeners = [Listener(a) for a in flags["listen"]]
    if not listeners and "listen" not in server and "listener" not in doc:
        listeners = list(Config.listen)
    if not listeners:
        problems.append("no listener: set [server] listen or add a [[listener]] table")
    _exposure(listeners, problems)

    ups_tables = _tables(doc, "upstream", problems)
    upstreams: list[Upstream] = []
    for where, table in ups_tables:
        u = _section("upstream", table, problems, where)
        if "url" not in u:
            if isinstance(table, dict) and "url" in table:
                continue  # its problem is already reported
            if len(ups_tables) > 1:
                problems.append(f"{where}: url is required when there are several")
                continue
            u["url"] = DEFAULT_UPSTREAM
        upstreams.append(Upstream(**u))
    if "upstream" in flags:
        base = upstreams[0] if upstreams else Upstream(DEFAULT_UPSTREAM)
        upstreams = [
            Upstream(
                flags["upstream"],
                "",
                base.first_byte_timeout,
                base.idle_timeout,
                base.connect_timeout,
                base.key_name,
            )
        ]
    if not upstreams and not ups_tables:
        upstreams = [Upstream(DEFAULT_UPSTREAM)]
    prefixes = [u.prefix for u in upstreams]
    for p in sorted(set(prefixes)):
        if prefixes.count(p) > 1:
            problems.append(
                f"[[upstream]]: prefix {p or '(root)'!r} is used by more than one "
                "upstream; give each its own prefix"
            )
    tok = Tokens(**tokens)
    if tok.default_ttl > tok.max_ttl:
        problems.append("[tokens] default_ttl is longer than max_ttl")

    state_dir = flags.get("state_dir", state.get("dir", Path(DEFAULT_STATE_DIR)))
    if problems:
        raise ConfigError(problems, source)
    d = Config()
    return Config(
        listen=tuple(listeners),
        upstreams=tuple(upstreams),
        tokens=tok,
        max_body_bytes=server.get("max_body_bytes", d.max_body_bytes),
        max_upload_bytes=server.get("max_upload_bytes", d.max_upload_bytes),
        drain_timeout=server.get("drain_timeout", d.drain_timeout),
        state_dir=state_dir,
        control_socket=flags.get("control_socket", control.get("socket", d.control_socket)),
        admin_group=control.get("admin_group", d.admin_group),
        control_max_request_bytes=control.get("max_request_bytes", d.control_max_request_bytes),
        control_request_timeout=control.get("request_timeout", d.control_request_timeout),
        keyring_backend=flags.get("keyring_backend", keyring_.get("backend", "auto")),
        keyring_credential=keyring_.get("credential", d.keyring_credential),
        audit_file=resolve_audit_file(audit.get("file", ""), state_dir),
        audit_log=audit.get("log", True),
        log_level=log.get("level", "info"),
        source=source,
    )


def resolve_audit_file(value: str, state_dir: Path) -> Path | None:
    """ "" → $LOGS_DIRECTORY/audit.jsonl (systemd's LogsDirectory=) or <state dir>/audit.jsonl;
    "-" → no file (the log still gets every record)."""
    if value == "-":
        return None
    if value:
        return Path(value)
    logs = os.environ.get("LOGS_DIRECTORY")
    return Path(logs.split(":")[0]) / "audit.jsonl" if logs else state_dir / "audit.jsonl"


def load(path: Path | None, overrides: Mapping[str, Any] | None = None) -> Config:
    """The config from ``path`` (None: built-in defaults) with command-line ``overrides``."""
    if path is None:
        return build({}, "<defaults>", overrides)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(["no such file (give --config PATH)"], str(path)) from None
    except PermissionError:
        raise ConfigError(["permission denied reading the file"], str(path)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"], str(path)) from None
    return build(doc, str(path), overrides)
