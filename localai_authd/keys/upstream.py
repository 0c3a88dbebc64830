"""The upstreams' own API keys (vLLM --api-key, LocalAI API_KEY): kept in the keyring.

One keyring entry, ``upstream-keys``, owned here, holds ``{name: secret}``;
``[[upstream]] key_name`` says which one the gateway sends to that upstream (as
``Authorization: Bearer``) in place of the client's credentials, which never reach the
upstream.
"""

from __future__ import annotations

import json

from ..errors import KeyringUnavailable, NotFound, UsageError
from .model import check_name
from .persist import Persistence

UPSTREAM_KEYS_ENTRY = "upstream-keys"
MAX_UPSTREAM_KEY = 4096


def check_upstream_key(secret: str) -> str | None:
    if not secret or len(secret) > MAX_UPSTREAM_KEY:
        return f"an upstream key must be 1 to {MAX_UPSTREAM_KEY} characters"
    if not secret.isascii() or not secret.isprintable() or " " in secret:
        return "an upstream key must be printable ASCII without spaces (it goes in a header)"
    return None


class UpstreamKeys:
    def __init__(self, persist: Persistence) -> None:
        self._persist = persist
        self._keys: dict[str, str] = {}

    def load_blocking(self) -> dict[str, str]:
        """Read the entry; runs on the keyring thread."""
        raw = self._persist.vault.get(UPSTREAM_KEYS_ENTRY)
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

    def install(self, keys: dict[str, str]) -> None:
        self._keys = keys

    def get(self, name: str) -> str | None:
        return self._keys.get(name)

    def names(self) -> list[str]:
        return sorted(self._keys)

    async def set(self, name: str, secret: str) -> None:
        problem = check_name(name) or check_upstream_key(secret)
        if problem:
            raise UsageError(problem.replace("key name", "upstream key name"))
        async with self._persist.lock:
            new = {**self._keys, name: secret}
            await self._persist.write(UPSTREAM_KEYS_ENTRY, json.dumps(new))
            self._keys = new

    async def delete(self, name: str) -> None:
        async with self._persist.lock:
            if name not in self._keys:
                raise NotFound(f"no upstream key named {name!r}")
            new = {k: v for k, v in self._keys.items() if k != name}
            await self._persist.write(UPSTREAM_KEYS_ENTRY, json.dumps(new))
            self._keys = new
