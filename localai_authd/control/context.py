"""What the control plane is given by the daemon: the store and the levers it may pull."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..audit import Audit
from ..config import Tokens
from ..keys.store import KeyStore
from ..streams import StreamRegistry
from ..usage import UsageStore


@dataclass
class ControlContext:
    store: KeyStore
    streams: StreamRegistry
    audit: Audit
    # version, uptime, upstream reachability, key counts, stream count
    status: Callable[[], Awaitable[dict[str, Any]]]
    # same as SIGHUP: re-read and validate the config; {"reloaded": bool, "problems": [...]}
    reload: Callable[[], Awaitable[dict[str, Any]]]
    admin_group: str  # "" = root and the daemon's own uid only
    # the token settings in force (they change on reload)
    tokens: Callable[[], Tokens] = Tokens
    max_request_bytes: int = 64 * 1024
    request_timeout: float = 10.0
    usage: UsageStore | None = None  # authctl usage
