"""TOML → frozen dataclasses. Every key validated; every problem collected, then one ConfigError.

The schema below is the single list of config keys: the example config
(packaging/config.toml) must document each of them, and a test holds it to that.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .durations import parse_duration
from .errors import ConfigError

DEFAULT_LISTEN = "127.0.0.1:11435"
DEFAULT_UPSTREAM = "http://127.0.0.1:11434"
DEFAULT_STATE_DIR = "/var/lib/localai-authd"
DEFAULT_SOCKET = "/run/localai-authd/control.sock"
LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class Listener:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Upstream:
    url: str  # scheme://host:port, no path
    prefix: str = ""  # "" serves at the root; "/gpu2" serves /gpu2/... as /... upstream
    first_byte_timeout: float = 600.0
    idle_timeout: float = 300.0
    connect_timeout: float = 10.0

    @property
    def host_header(self) -> str:
        return urlsplit(self.url).netloc


@dataclass(frozen=True)
class Config:
    listen: tuple[Listener, ...] = (Listener("127.0.0.1", 11435),)
    upstreams: tuple[Upstream, ...] = (Upstream(DEFAULT_UPSTREAM),)
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


# ---- the schema ---------------------------------------------------------------------------
# section -> key -> converter(value) -> python value (raise ValueError with a user message)


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {type(v).__name__}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def _size(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"expected a positive number of bytes, got {v!r}")
    return v


def _duration(v: Any) -> float:
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError(f'expected a duration like "30s" or "10m", got {v!r}')
    return parse_duration(v)


def _positive_duration(v: Any) -> float:
    d = _duration(v)
    if d <= 0:
        raise ValueError("must be more than zero")
    return d


def parse_listen(v: Any) -> Listener:
    s = _str(v).strip()
    host, sep, port_s = s.rpartition(":")
    if not sep or not host:
        raise ValueError(f"expected HOST:PORT like 127.0.0.1:11435 or [::1]:11435, got {s!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{host!r} is not an IP address (or localhost)") from None
    if not port_s.isdigit() or not 0 < int(port_s) < 65536:
        raise ValueError(f"port must be 1-65535, got {port_s!r}")
    return Listener(host, int(port_s))


def _listen_list(v: Any) -> tuple[Listener, ...]:
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise ValueError("expected a list of HOST:PORT strings")
    return tuple(parse_listen(x) for x in items)


def parse_upstream_url(v: Any) -> str:
    s = _str(v).strip()
    u = urlsplit(s)
    if u.scheme not in ("http", "https"):
        raise ValueError(f"expected an http:// or https:// URL, got {s!r}")
    if not u.hostname:
        raise ValueError(f"the URL {s!r} has no host")
    if u.username or u.password:
        raise ValueError("no credentials in the URL: they would end up in logs")
    if u.path not in ("", "/") or u.query or u.fragment:
        raise ValueError(f"give scheme://host:port only (no path or query), got {s!r}")
    try:
        _ = u.port
    except ValueError:
        raise ValueError(f"bad port in {s!r}") from None
    return f"{u.scheme}://{u.netloc}"


def _prefix(v: Any) -> str:
    s = _str(v)
    if s in ("", "/"):
        return ""
    if not s.startswith("/") or s.endswith("/") or "//" in s or ".." in s:
        raise ValueError(f'expected "" or a path like "/gpu2" (no trailing slash), got {s!r}')
    if not all(c.isalnum() or c in "/-_." for c in s):
        raise ValueError(f"use only letters, digits and / - _ . in a prefix, got {s!r}")
    return s


def _log_level(v: Any) -> str:
    s = _str(v).lower()
    if s not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {v!r}")
    return s


def _path(v: Any) -> Path:
    s = _str(v)
    if not s:
        raise ValueError("must not be empty")
    return Path(s)


def _group(v: Any) -> str:
    s = _str(v)
    if s and not all(c.isalnum() or c in "-_." for c in s):
        raise ValueError(f"not a group name: {s!r}")
    return s


def _keyring_backend(v: Any) -> str:
    s = _str(v).strip()
    if s in ("auto", "file") or ("." in s and all(p.isidentifier() for p in s.split("."))):
        return s
    raise ValueError(
        f'expected "auto", "file" or a backend class like '
        f'"keyring.backends.SecretService.Keyring", got {s!r}'
    )


Converter = Callable[[Any], Any]
SCHEMA: dict[str, dict[str, Converter]] = {
    "server": {
        "listen": _listen_list,
        "max_body_bytes": _size,
        "max_upload_bytes": _size,
        "drain_timeout": _duration,
    },
    "upstream": {
        "url": parse_upstream_url,
        "prefix": _prefix,
        "first_byte_timeout": _positive_duration,
        "idle_timeout": _positive_duration,
        "connect_timeout": _positive_duration,
    },
    "control": {
        "socket": _path,
        "admin_group": _group,
        "max_request_bytes": _size,
        "request_timeout": _positive_duration,
    },
    "keyring": {"backend": _keyring_backend, "credential": _str},
    "state": {"dir": _path},
    "audit": {"file": _str, "log": _bool},
    "log": {"level": _log_level},
}
ARRAY_SECTIONS = {"upstream"}  # [[upstream]] may repeat


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


def _parse_overrides(overrides: Mapping[str, Any], problems: list[str]) -> dict[str, Any]:
    """Command-line flags, in the same shape as the file's keys (flags win)."""
    out: dict[str, Any] = {}
    for flag, conv, key in (
        ("listen", _listen_list, "listen"),
        ("upstream", parse_upstream_url, "upstream"),
        ("state_dir", _path, "state_dir"),
        ("control_socket", _path, "control_socket"),
        ("keyring_backend", _keyring_backend, "keyring_backend"),
    ):
        v = overrides.get(flag)
        if v in (None, [], ()):
            continue
        try:
            out[key] = conv(list(v) if isinstance(v, tuple) else v)
        except ValueError as e:
            problems.append(f"--{flag.replace('_', '-')}: {e}")
    return out


def build(
    doc: Mapping[str, Any], source: str, overrides: Mapping[str, Any] | None = None
) -> Config:
    problems: list[str] = []
    for name in doc:
        if name not in SCHEMA:
            problems.append(
                _unknown("top level", name, [f"[{s}]" for s in SCHEMA]).replace(
                    "unknown key", "unknown section"
                )
            )
    server = _section("server", doc.get("server", {}), problems)
    control = _section("control", doc.get("control", {}), problems)
    keyring_ = _section("keyring", doc.get("keyring", {}), problems)
    state = _section("state", doc.get("state", {}), problems)
    audit = _section("audit", doc.get("audit", {}), problems)
    log = _section("log", doc.get("log", {}), problems)
    ups_doc = doc.get("upstream", [])
    if isinstance(ups_doc, dict):
        ups_doc = [ups_doc]
    upstreams: list[Upstream] = []
    if not isinstance(ups_doc, list):
        problems.append("[[upstream]]: expected one or more [[upstream]] tables")
        ups_doc = []
    for n, table in enumerate(ups_doc, 1):
        u = _section("upstream", table, problems, where=f"[[upstream]] #{n}")
        if "url" not in u:
            if isinstance(table, dict) and "url" in table:
                continue  # its problem is already reported
            if len(ups_doc) > 1:
                problems.append(f"[[upstream]] #{n}: url is required when there are several")
                continue
            u["url"] = DEFAULT_UPSTREAM
        upstreams.append(Upstream(**u))
    flags = _parse_overrides(overrides or {}, problems)
    if "upstream" in flags:
        base = upstreams[0] if upstreams else Upstream(DEFAULT_UPSTREAM)
        upstreams = [
            Upstream(
                flags["upstream"],
                "",
                base.first_byte_timeout,
                base.idle_timeout,
                base.connect_timeout,
            )
        ]
    if not upstreams and not ups_doc:
        upstreams = [Upstream(DEFAULT_UPSTREAM)]
    prefixes = [u.prefix for u in upstreams]
    for p in sorted(set(prefixes)):
        if prefixes.count(p) > 1:
            problems.append(
                f"[[upstream]]: prefix {p or '(root)'!r} is used by more than one "
                "upstream; give each its own prefix"
            )
    listen = flags.get("listen", server.get("listen", Config.listen))
    for lst in listen:
        if not lst.is_loopback:
            # PRODUCT.md: binding beyond loopback requires TLS. Until [tls] exists, refuse.
            problems.append(
                f"[server] listen = {lst} is not loopback: a listener beyond loopback needs TLS, "
                "which this version does not offer yet; listen on 127.0.0.1 or [::1] and put a "
                "TLS terminator in front"
            )
    if len(set(listen)) != len(listen):
        problems.append("[server] listen: the same address is listed twice")
    state_dir = flags.get("state_dir", state.get("dir", Path(DEFAULT_STATE_DIR)))
    audit_file_s = audit.get("file", "")
    if problems:
        raise ConfigError(problems, source)
    return Config(
        listen=tuple(listen),
        upstreams=tuple(upstreams),
        max_body_bytes=server.get("max_body_bytes", Config.max_body_bytes),
        max_upload_bytes=server.get("max_upload_bytes", Config.max_upload_bytes),
        drain_timeout=server.get("drain_timeout", Config.drain_timeout),
        state_dir=state_dir,
        control_socket=flags.get("control_socket", control.get("socket", Path(DEFAULT_SOCKET))),
        admin_group=control.get("admin_group", Config.admin_group),
        control_max_request_bytes=control.get(
            "max_request_bytes", Config.control_max_request_bytes
        ),
        control_request_timeout=control.get("request_timeout", Config.control_request_timeout),
        keyring_backend=flags.get("keyring_backend", keyring_.get("backend", "auto")),
        keyring_credential=keyring_.get("credential", Config.keyring_credential),
        audit_file=resolve_audit_file(audit_file_s, state_dir),
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
