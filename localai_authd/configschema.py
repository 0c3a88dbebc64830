"""Config converters and the schema: section -> key -> converter. Pure.

A converter takes the TOML value and returns the Python value, or raises ValueError with a
message fit for the user. The schema is the single list of config keys: the example config
(packaging/config.toml) must document each of them, and a test holds it to that.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .durations import parse_duration

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


def parse_listen(v: Any) -> ListenAddress:
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
    return ListenAddress(host, int(port_s))


def _listen_list(v: Any) -> tuple[ListenAddress, ...]:
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


def _key_name(v: Any) -> str:
    s = _str(v)
    if s and not (len(s) <= 64 and all(c.isalnum() or c in "._-" for c in s)):
        raise ValueError(f"a key name is 1-64 of A-Z a-z 0-9 . _ -, got {s!r}")
    return s


def _choice(*options: str) -> Converter:
    def conv(v: Any) -> str:
        s = _str(v)
        if s not in options:
            raise ValueError(f"expected one of {', '.join(repr(o) for o in options)}, got {v!r}")
        return s

    return conv


def secret_file(v: Any) -> Path:
    """A file path, or ``credential:NAME`` for ``$CREDENTIALS_DIRECTORY/NAME`` (systemd's
    LoadCredential=/LoadCredentialEncrypted=, so a TLS key need not sit in /etc)."""
    s = _str(v)
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
    return _path(s)


Converter = Callable[[Any], Any]
SCHEMA: dict[str, dict[str, Converter]] = {
    "server": {
        "listen": _listen_list,
        "max_body_bytes": _size,
        "max_upload_bytes": _size,
        "drain_timeout": _duration,
    },
    "listener": {
        "address": parse_listen,
        "tls_cert": secret_file,
        "tls_key": secret_file,
        "client_ca": _path,
        "client_crl": _path,
        "client_cert": _choice("off", "optional", "required"),
        "client_identity": _choice("cn", "san"),
        "require_key_with_cert": _bool,
        "basic_auth": _bool,
    },
    "upstream": {
        "url": parse_upstream_url,
        "prefix": _prefix,
        "first_byte_timeout": _positive_duration,
        "idle_timeout": _positive_duration,
        "connect_timeout": _positive_duration,
        "key_name": _key_name,
    },
    "tokens": {
        "exchange": _bool,
        "default_ttl": _positive_duration,
        "max_ttl": _positive_duration,
        "leeway": _duration,
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
ARRAY_SECTIONS = ("listener", "upstream")  # [[listener]] and [[upstream]] may repeat
