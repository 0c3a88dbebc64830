"""Streams in flight, by key id, so `authctl revoke --kill-streams` can end them."""

from __future__ import annotations

import asyncio
from collections import defaultdict


class StreamRegistry:
    def __init__(self) -> None:
        self._by_kid: defaultdict[str, set[asyncio.Task[object]]] = defaultdict(set)
        self.killed: set[asyncio.Task[object]] = set()

    def add(self, kid: str, task: asyncio.Task[object]) -> None:
        self._by_kid[kid].add(task)

    def discard(self, kid: str, task: asyncio.Task[object]) -> None:
        tasks = self._by_kid.get(kid)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._by_kid[kid]
        self.killed.discard(task)

    def kill(self, kid: str) -> int:
        """Cancel every request of ``kid`` in flight; returns how many were ended."""
        tasks = list(self._by_kid.get(kid, ()))
        for t in tasks:
            self.killed.add(t)
            t.cancel()
        return len(tasks)

    def kill_all(self) -> int:
        """Cancel every request in flight (the end of a bounded drain)."""
        return sum(self.kill(kid) for kid in list(self._by_kid))

    def count(self, kid: str | None = None) -> int:
        if kid is not None:
            return len(self._by_kid.get(kid, ()))
        return sum(len(s) for s in self._by_kid.values())
