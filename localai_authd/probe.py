"""Whether an upstream listens: a TCP connect, bounded to 2 s (for authctl status)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit


async def reachable(url: str) -> dict[str, Any]:
    """{"reachable": True}, or {"reachable": False, "detail": why}."""
    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        async with asyncio.timeout(2):
            _, w = await asyncio.open_connection(u.hostname, port)
        w.close()
        with contextlib.suppress(OSError):
            await w.wait_closed()
        return {"reachable": True}
    except (OSError, TimeoutError) as e:
        return {"reachable": False, "detail": str(e) or type(e).__name__}
