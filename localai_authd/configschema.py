"""Config converters and the schema: section -> key -> converter. Pure.

A converter takes the TOML value and returns the Python value, or raises ValueError with a
message fit for the user (config.py adds the file, section and key). The converters are
public so that a new section reuses them: ``string``, ``boolean``, ``byte_size``,
``positive_int``, ``duration``, ``positive_duration``, ``path``, ``secret_file``,
``choice(...)``, ``parse_listen``, ``listen_list``, ``parse_upstream_url``, ``url_prefix``,
``log_level``, ``group_name``, ``keyring_backend``, ``key_name``.

The schema is the single list of config keys: the example config (packaging/config.toml)
must document each of them, and a test holds it to that. A :class:`Draft` reads the TOML
document against it for the section validators in config.py.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .durations import parse_duration
from .limitsconfig import CONNECTIONS_SCHEMA, LIMITS_SCHEMA

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int

    @property
    def is_loopback(self) -> bool:
        return self.host == "localhost" or ipaddress.ip_address(self.host).is_loopback

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


# ---- converters: value from TOML -> Python value, or ValueError with a message for the user ----


def string(v: Any) -> str:
    """A TOML string, as it is."""
    if not isinstance(v, str):
        raise ValueError(f"expected a string, got {type(v).__name__}")
    return v


def boolean(v: Any) -> bool:
    """``true`` or ``false`` (never 0/1 or "yes")."""
    if not isinstance(v, bool):
        raise ValueError(f"expected true or false, got {v!r}")
    return v


def byte_size(v: Any) -> int:
    """A positive integer number of bytes."""
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"expected a positive number of bytes, got {v!r}")
    return v


def duration(v: Any) -> float:
    """Seconds, from ``30``, ``"30s"``, ``"1h30m"`` (see durations.py); finite, not negative."""
    if not isinstance(v, str | int | float) or isinstance(v, bool):
        raise ValueError(f'expected a duration like "30s" or "10m", got {v!r}')
    d = parse_duration(v)
    if not math.isfinite(d):  # TOML has inf and nan
        raise ValueError(f"expected a finite duration, got {v!r}")
    return d


def positive_duration(v: Any) -> float:
    """A duration of more than zero seconds."""
    d = duration(v)
    if d <= 0:
        raise ValueError("must be more than zero")
    return d


def parse_listen(v: Any) -> ListenAddress:
    """``HOST:PORT`` with an IP address (``[::1]:11435`` for IPv6) or ``localhost``."""
    s = string(v).strip()
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
    return ListenAddress(host, int(port_s))


def listen_list(v: Any) -> tuple[ListenAddress, ...]:
    """One ``HOST:PORT`` string or a non-empty list of them."""
    items = [v] if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        raise ValueError("expected a list of HOST:PORT strings")
    return tuple(parse_listen(x) for x in items)


def parse_upstream_url(v: Any) -> str:
    """``http(s)://host:port``, normalised; no path, query or credentials."""
    s = string(v).strip()
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


def url_prefix(v: Any) -> str:
    """``""`` (the root) or a path like ``/gpu2`` under which an upstream is served."""
    s = string(v)
    if s in ("", "/"):
        return ""
    if not s.startswith("/") or s.endswith("/") or "//" in s or ".." in s:
        raise ValueError(f'expected "" or a path like "/gpu2" (no trailing slash), got {s!r}')
    if not all(c.isalnum() or c in "/-_." for c in s):
        raise ValueError(f"use only letters, digits and / - _ . in a prefix, got {s!r}")
    return s


def log_level(v: Any) -> str:
    """One of LOG_LEVELS, case-insensitive; returned in lower case."""
    s = string(v).lower()
    if s not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {v!r}")
    return s


def path(v: Any) -> Path:
    """A non-empty file system path."""
    s = string(v)
    if not s:
        raise ValueError("must not be empty")
    return Path(s)


def group_name(v: Any) -> str:
    """A Unix group name (letters, digits, ``-_.``), or ``""``."""
    s = string(v)
    if s and not all(c.isalnum() or c in "-_." for c in s):
        raise ValueError(f"not a group name: {s!r}")
    return s


def keyring_backend(v: Any) -> str:
    """``auto``, ``file``, or a dotted keyring backend class name."""
    s = string(v).strip()
    if s in ("auto", "file") or ("." in s and all(p.isidentifier() for p in s.split("."))):
        return s
    raise ValueError(
        f'expected "auto", "file" or a backend class like '
        f'"keyring.backends.SecretService.Keyring", got {s!r}'
    )


def key_name(v: Any) -> str:
    """A key name in the keyring (1-64 of ``A-Za-z0-9._-``), or ``""`` for none."""
    s = string(v)
    if s and not (len(s) <= 64 and all(c.isalnum() or c in "._-" for c in s)):
        raise ValueError(f"a key name is 1-64 of A-Z a-z 0-9 . _ -, got {s!r}")
    return s


def choice(*options: str) -> Converter:
    """A converter accepting exactly one of ``options`` (strings)."""

    def conv(v: Any) -> str:
        s = string(v)
        if s not in options:
            raise ValueError(f"expected one of {', '.join(repr(o) for o in options)}, got {v!r}")
        return s

    return conv


def secret_file(v: Any) -> Path:
    """A file path, or ``credential:NAME`` for ``$CREDENTIALS_DIRECTORY/NAME`` (systemd's
    LoadCredential=/LoadCredentialEncrypted=, so a TLS key need not sit in /etc)."""
    s = string(v)
    if s.startswith("credential:"):
        name = s.removeprefix("credential:")
        if not name or "/" in name:
            raise ValueError(f"expected credential:NAME, got {s!r}")
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if not creds:
            raise ValueError(
                f"{s!r} needs $CREDENTIALS_DIRECTORY (LoadCredential= in the unit); it is not set"
            )
        return Path(creds) / name
    return path(s)


def positive_int(v: Any) -> int:
    """An integer of at least 1 (counts, caps, rates)."""
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"expected a whole number of at least 1, got {v!r}")
    return v


# ---- the schema: section -> key -> converter ------------------------------------------------
Converter = Callable[[Any], Any]
SCHEMA: dict[str, dict[str, Converter]] = {
    "server": {
        "listen": listen_list,
        "max_body_bytes": byte_size,
        "max_upload_bytes": byte_size,
        "drain_timeout": duration,
    },
    "listener": {
        "address": parse_listen,
        "tls_cert": secret_file,
        "tls_key": secret_file,
        "client_ca": path,
        "client_crl": path,
        "client_cert": choice("off", "optional", "required"),
        "client_identity": choice("cn", "san"),
        "require_key_with_cert": boolean,
        "basic_auth": boolean,
    },
    "upstream": {
        "url": parse_upstream_url,
        "prefix": url_prefix,
        "first_byte_timeout": positive_duration,
        "idle_timeout": positive_duration,
        "connect_timeout": positive_duration,
        "key_name": key_name,
    },
    "tokens": {
        "exchange": boolean,
        "default_ttl": positive_duration,
        "max_ttl": positive_duration,
        "leeway": duration,
    },
    "control": {
        "socket": path,
        "admin_group": group_name,
        "max_request_bytes": byte_size,
        "request_timeout": positive_duration,
    },
    "keyring": {"backend": keyring_backend, "credential": string},
    "state": {"dir": path},
    "audit": {"file": string, "log": boolean, "required": boolean},
    "log": {"level": log_level},
    "limits": LIMITS_SCHEMA,
    "connections": CONNECTIONS_SCHEMA,
    "metrics": {
        "listen": parse_listen,
        "tls_cert": secret_file,
        "tls_key": secret_file,
        "client_ca": path,
    },
}
ARRAY_SECTIONS = ("listener", "upstream")  # [[listener]] and [[upstream]] may repeat


# ---- reading a section against the schema -----------------------------------------------------


def unknown_key(where: str, key: str, known: list[str]) -> str:
    """The problem line for a key the schema does not know, with the nearest known one."""
    hint = difflib.get_close_matches(key, known, n=1)
    did = f"; did you mean {hint[0]!r}?" if hint else f"; known: {', '.join(known)}"
    return f"{where}: unknown key {key!r}{did}"


@dataclass
class Draft:
    """What a section validator works from: the TOML document, the command-line flags
    (already converted; flags win over the file), and the one list of problems that every
    validator appends to (each problem names the section, the key and the fix)."""

    doc: Mapping[str, Any]
    flags: Mapping[str, Any]
    problems: list[str]
    _converted: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, name: str) -> dict[str, Any]:
        """The [name] table, converted key by key. A bad or unknown key is one problem
        (reported once, however many validators read the table) and is left out."""
        if name not in self._converted:
            self._converted[name] = self.convert(name, self.doc.get(name, {}))
        return self._converted[name]

    def tables(self, name: str) -> list[tuple[str, Any]]:
        """The raw [[name]] tables, each with the label its problems use; convert each
        with ``convert(name, table, label)``."""
        raw = self.doc.get(name, [])
        if isinstance(raw, dict):
            raw = [raw]
        if not isinstance(raw, list):
            self.problems.append(f"[[{name}]]: expected one or more [[{name}]] tables")
            return []
        return [(f"[[{name}]] #{n}", t) for n, t in enumerate(raw, 1)]

    def convert(self, name: str, table: Any, where: str | None = None) -> dict[str, Any]:
        """``table`` converted with SCHEMA[name]; problems are appended, bad keys left out."""
        where = where or f"[{name}]"
        out: dict[str, Any] = {}
        if not isinstance(table, dict):
            self.problems.append(f"{where}: expected a table")
            return out
        schema = SCHEMA[name]
        for key, value in table.items():
            converter = schema.get(key)
            if converter is None:
                self.problems.append(unknown_key(where, key, list(schema)))
                continue
            try:
                out[key] = converter(value)
            except ValueError as e:
                self.problems.append(f"{where} {key}: {e}")
        return out


SectionValidator = Callable[[Draft], dict[str, Any]]
