"""TOML → frozen dataclasses. Every key validated; every problem collected, then one ConfigError.

The keys and their converters are in :mod:`configschema`. Here each TOML section has one
validator (see SECTIONS): it reads its table(s) through a :class:`Draft`, appends every
problem to the draft's shared list (naming the section, the key and the fix), and returns
the Config fields it owns. ``build`` runs them all, then fails once with every problem.

Adding a section ``[foo]``: its keys and converters in ``configschema.SCHEMA["foo"]``, a
frozen dataclass ``Foo`` with the defaults, a validator ``_foo(d) -> {"foo": Foo(...)}``
checking the rules that span its keys, an entry in SECTIONS, a field ``foo: Foo = Foo()``
on Config, and the keys documented in packaging/config.toml (a test holds it to that).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import configschema as conv
from .configlisten import DEFAULT_LISTENERS, TLS, Listener, listeners
from .configmetrics import Metrics, metrics
from .configschema import (
    ARRAY_SECTIONS,
    SCHEMA,
    Draft,
    ListenAddress,
    SectionValidator,
    parse_listen,
    unknown_key,
)
from .errors import ConfigError
from .limitsconfig import ConnectionsConfig, LimitsConfig, connections_section, limits_section

DEFAULT_LISTEN = "127.0.0.1:11435"
DEFAULT_UPSTREAM = "http://127.0.0.1:11434"
DEFAULT_STATE_DIR = "/var/lib/localai-authd"
DEFAULT_SOCKET = "/run/localai-authd/control.sock"
__all__ = [
    "SECTIONS",
    "TLS",
    "Config",
    "Draft",
    "ListenAddress",
    "Listener",
    "Metrics",
    "Tokens",
    "Upstream",
    "build",
    "load",
    "parse_listen",
]


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
    listen: tuple[Listener, ...] = DEFAULT_LISTENERS
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
    audit_required: bool = False  # refuse new requests (503) while records cannot be written
    log_level: str = "info"
    limits: LimitsConfig = dataclasses.field(default_factory=LimitsConfig)
    connections: ConnectionsConfig = dataclasses.field(default_factory=ConnectionsConfig)
    metrics: Metrics = field(default_factory=Metrics)
    source: str = "<defaults>"


_FLAGS: dict[str, conv.Converter] = {
    "listen": conv.listen_list,
    "upstream": conv.parse_upstream_url,
    "state_dir": conv.path,
    "control_socket": conv.path,
    "keyring_backend": conv.keyring_backend,
}


def _parse_flags(overrides: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Command-line flags, in the same shape as the file's keys (flags win)."""
    out: dict[str, Any] = {}
    for flag, converter in _FLAGS.items():
        v = overrides.get(flag)
        if v in (None, [], ()):
            continue
        try:
            out[flag] = converter(list(v) if isinstance(v, tuple) else v)
        except ValueError as e:
            problems.append(f"--{flag.replace('_', '-')}: {e}")
    return out


# ---- one validator per section ----------------------------------------------------------------


def _server(d: Draft) -> dict[str, Any]:
    t, c = d.table("server"), Config()
    return {
        "max_body_bytes": t.get("max_body_bytes", c.max_body_bytes),
        "max_upload_bytes": t.get("max_upload_bytes", c.max_upload_bytes),
        "drain_timeout": t.get("drain_timeout", c.drain_timeout),
    }


def _upstreams(d: Draft) -> dict[str, Any]:
    """The [[upstream]] tables (--upstream replaces their URLs with one)."""
    tables = d.tables("upstream")
    upstreams: list[Upstream] = []
    for where, table in tables:
        u = d.convert("upstream", table, where)
        if "url" not in u:
            if isinstance(table, dict) and "url" in table:
                continue  # its problem is already reported
            if len(tables) > 1:
                d.problems.append(f"{where}: url is required when there are several")
                continue
            u["url"] = DEFAULT_UPSTREAM
        upstreams.append(Upstream(**u))
    if "upstream" in d.flags:
        base = upstreams[0] if upstreams else Upstream(DEFAULT_UPSTREAM)
        upstreams = [dataclasses.replace(base, url=d.flags["upstream"], prefix="")]
    if not upstreams and not tables:
        upstreams = [Upstream(DEFAULT_UPSTREAM)]
    prefixes = [u.prefix for u in upstreams]
    for p in sorted(set(prefixes)):
        if prefixes.count(p) > 1:
            d.problems.append(
                f"[[upstream]]: prefix {p or '(root)'!r} is used by more than one "
                "upstream; give each its own prefix"
            )
    return {"upstreams": tuple(upstreams)}


def _tokens(d: Draft) -> dict[str, Any]:
    tok = Tokens(**d.table("tokens"))
    if tok.default_ttl > tok.max_ttl:
        d.problems.append(
            "[tokens] default_ttl is longer than max_ttl: shorten default_ttl or raise max_ttl"
        )
    return {"tokens": tok}


def _control(d: Draft) -> dict[str, Any]:
    t, c = d.table("control"), Config()
    return {
        "control_socket": d.flags.get("control_socket", t.get("socket", c.control_socket)),
        "admin_group": t.get("admin_group", c.admin_group),
        "control_max_request_bytes": t.get("max_request_bytes", c.control_max_request_bytes),
        "control_request_timeout": t.get("request_timeout", c.control_request_timeout),
    }


def _keyring(d: Draft) -> dict[str, Any]:
    t, c = d.table("keyring"), Config()
    return {
        "keyring_backend": d.flags.get("keyring_backend", t.get("backend", c.keyring_backend)),
        "keyring_credential": t.get("credential", c.keyring_credential),
    }


def _state_dir(d: Draft) -> Path:
    return Path(d.flags.get("state_dir", d.table("state").get("dir", DEFAULT_STATE_DIR)))


def _state(d: Draft) -> dict[str, Any]:
    return {"state_dir": _state_dir(d)}


def _audit(d: Draft) -> dict[str, Any]:
    t = d.table("audit")
    return {
        "audit_file": resolve_audit_file(t.get("file", ""), _state_dir(d)),
        "audit_log": t.get("log", True),
        "audit_required": t.get("required", False),
    }


def _log(d: Draft) -> dict[str, Any]:
    return {"log_level": d.table("log").get("level", "info")}


# Section -> its validator, run in this order; every SCHEMA section has exactly one.
SECTIONS: dict[str, SectionValidator] = {
    "server": _server,
    "listener": listeners,
    "upstream": _upstreams,
    "tokens": _tokens,
    "control": _control,
    "keyring": _keyring,
    "state": _state,
    "audit": _audit,
    "log": _log,
    "limits": limits_section,
    "connections": connections_section,
    "metrics": metrics,
}


def build(
    doc: Mapping[str, Any], source: str, overrides: Mapping[str, Any] | None = None
) -> Config:
    """The Config from a parsed TOML document; ConfigError with every problem if invalid."""
    problems: list[str] = []
    for name in doc:
        if name not in SCHEMA:
            known = [f"[[{s}]]" if s in ARRAY_SECTIONS else f"[{s}]" for s in SCHEMA]
            problems.append(
                unknown_key("top level", name, known).replace("unknown key", "unknown section")
            )
    draft = Draft(doc, _parse_flags(overrides or {}, problems), problems)
    fields: dict[str, Any] = {}
    for validate in SECTIONS.values():
        fields.update(validate(draft))
    if problems:
        raise ConfigError(problems, source)
    return Config(source=source, **fields)


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
    except IsADirectoryError:
        raise ConfigError(["is a directory; give --config the TOML file"], str(path)) from None
    except OSError as e:
        raise ConfigError([f"cannot read the file: {e.strerror or e}"], str(path)) from None
    except UnicodeDecodeError as e:  # TOML is UTF-8 (toml.io: "must be a valid UTF-8")
        raise ConfigError(
            [f"not valid TOML: not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start})"],
            str(path),
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([f"not valid TOML: {e}"], str(path)) from None
    return build(doc, str(path), overrides)
