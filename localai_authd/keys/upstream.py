"""The upstreams' own API keys (vLLM --api-key, LocalAI API_KEY): kept in the keyring.

A mixin of :class:`~localai_authd.keys.store.KeyStore`. One keyring entry,
``upstream-keys``, holds ``{name: secret}``; ``[[upstream]] key_name`` says which one the
gateway sends to that upstream (as ``Authorization: Bearer``) in place of the client's
credentials, which never reach the upstream.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import KeyringUnavailable, NotFound, UsageError

if TYPE_CHECKING:
    from .store import VaultLike

UPSTREAM_KEYS_ENTRY = "upstream-keys"
MAX_UPSTREAM_KEY = 4096


def check_upstream_key(secret: str) -> str | None:
    if not secret or len(secret) > MAX_UPSTREAM_KEY:
        return f"an upstream key must be 1 to {MAX_UPSTREAM_KEY} characters"
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        return "an upstream key must be printable ASCII without spaces (it goes in a header)"
    return None


class UpstreamKeysMixin:
    # Provided by KeyStore.
    _upstream_keys: dict[str, str]
    _lock: asyncio.Lock
    _vault: VaultLike

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        raise NotImplementedError

    def _load_upstream_keys_blocking(self) -> dict[str, str]:
        raw = self._vault.get(UPSTREAM_KEYS_ENTRY)
        if raw is None:
            return {}
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in doc.items()
            ):
                raise ValueError("not a name → key map")
        except ValueError as e:
            raise KeyringUnavailable(f"the upstream keys in the keyring are unreadable: {e}") from e
        return dict(doc)

    def upstream_key(self, name: str) -> str | None:
        return self._upstream_keys.get(name)

    def upstream_key_names(self) -> list[str]:
        return sorted(self._upstream_keys)

    async def set_upstream_key(self, name: str, secret: str) -> None:
        from .model import check_name  # the same rules as key names

        problem = check_name(name) or check_upstream_key(secret)
        if problem:
            raise UsageError(problem.replace("key name", "upstream key name"))
        async with self._lock:
            new = {**self._upstream_keys, name: secret}
            await self._run(self._vault.set, UPSTREAM_KEYS_ENTRY, json.dumps(new))
            self._upstream_keys = new

    async def delete_upstream_key(self, name: str) -> None:
        async with self._lock:
            if name not in self._upstream_keys:
                raise NotFound(f"no upstream key named {name!r}")
            new = {k: v for k, v in self._upstream_keys.items() if k != name}
            await self._run(self._vault.set, UPSTREAM_KEYS_ENTRY, json.dumps(new))
            self._upstream_keys = new
