"""How the key store's parts reach the keyring: one lock, one worker thread.

Each part (the key table, the signing secrets, the upstream keys) owns its own keyring entry
and writes it through this object. Keyring calls can block (D-Bus, fsync), so they run on a
single worker thread, never on the event loop; one worker also means they are serialised.
Changes are serialised by one lock shared by every part: a change reads the live state,
writes the new state, and only then installs it, so a change is durable before anyone is
told it succeeded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

T = TypeVar("T")


class VaultLike(Protocol):
    backend_name: str

    def get(self, name: str) -> str | None: ...
    def set(self, name: str, value: str) -> None: ...
    def delete(self, name: str) -> None: ...


class Persistence:
    def __init__(self, vault: VaultLike) -> None:
        self.vault = vault
        self.lock = asyncio.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyring")

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` on the keyring thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    async def write(self, entry: str, value: str) -> None:
        """Store ``value`` under ``entry``; the caller holds :attr:`lock`."""
        await self.run(self.vault.set, entry, value)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
