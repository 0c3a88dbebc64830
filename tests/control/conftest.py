"""Real parts for the control plane: a real key store on the project's encrypted file
keyring, the real control server on a real Unix socket, in the test's loop or in a thread of
its own (for click's CliRunner and other blocking callers).

Socket paths live in short directories under /tmp: sun_path holds 108 bytes.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from localai_authd.audit import Audit
from localai_authd.control.context import ControlContext
from localai_authd.control.server import ControlServer, start_control_server
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from localai_authd.streams import StreamRegistry

T = TypeVar("T")
REQUEST_TIMEOUT = 1.0
MAX_REQUEST_BYTES = 4096


@dataclass
class Levers:
    """What the daemon would hand over for status and reload, with a record of the calls."""

    store: KeyStore
    reload_result: dict[str, Any] = field(
        default_factory=lambda: {"reloaded": True, "problems": []}
    )
    reloads: int = 0
    fail_status: bool = False
    reload_delay: float = 0.0
    reload_started: asyncio.Event = field(default_factory=asyncio.Event)

    async def status(self) -> dict[str, Any]:
        if self.fail_status:
            raise RuntimeError("secret-internal-detail")
        return {
            "version": "0.1.0",
            "uptime": 12.5,
            "keys": self.store.counts(),
            "upstreams": [{"url": "http://127.0.0.1:11434", "reachable": True}],
        }

    async def reload(self) -> dict[str, Any]:
        self.reload_started.set()
        await asyncio.sleep(self.reload_delay)
        self.reloads += 1
        return self.reload_result


@dataclass
class Control:
    sock: Path
    store: KeyStore
    ctx: ControlContext
    server: ControlServer
    audit_path: Path
    levers: Levers

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(x) for x in self.audit_path.read_text().splitlines()]

    def snapshot(self) -> list[dict[str, Any]]:
        """The whole store, verifiers included: equal before and after means untouched."""
        return [i.to_json() for i in self.store.all()]


def short_dir(prefix: str = "ctl-") -> Path:
    return Path(tempfile.mkdtemp(dir="/tmp", prefix=prefix))


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    d = short_dir()
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def open_control(
    store: KeyStore, base: Path, audit_path: Path, admin_group: str = "", **kw: Any
) -> Control:
    levers = Levers(store)
    ctx = ControlContext(
        store=store,
        streams=StreamRegistry(),
        audit=Audit(audit_path, to_log=False),
        status=levers.status,
        reload=levers.reload,
        admin_group=admin_group,
        max_request_bytes=kw.pop("max_request_bytes", MAX_REQUEST_BYTES),
        request_timeout=kw.pop("request_timeout", REQUEST_TIMEOUT),
    )
    sock = base / "run" / "control.sock"
    server = await start_control_server(ctx, sock)
    return Control(sock, store, ctx, server, audit_path, levers)


async def close_control(c: Control) -> None:
    await c.server.close()
    c.ctx.audit.close()


@pytest.fixture
async def control(store: KeyStore, sock_dir: Path, tmp_path: Path) -> AsyncIterator[Control]:
    c = await open_control(store, sock_dir, tmp_path / "audit.jsonl")
    yield c
    await close_control(c)


class ThreadedControl:
    """The control server with its own store, in an event loop on a thread of its own."""

    def __init__(self, state_dir: Path, base: Path, admin_group: str = "") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="control-loop")
        self._thread.start()
        self.c: Control = self.run(self._open(state_dir, base, admin_group))

    async def _open(self, state_dir: Path, base: Path, admin_group: str) -> Control:
        store = KeyStore(open_vault("file", state_dir))
        await store.load()
        return await open_control(store, base, state_dir / "audit.jsonl", admin_group)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    async def _close(self) -> None:
        await close_control(self.c)
        await self.c.store.close()

    def close(self) -> None:
        try:
            self.run(self._close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=30)
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
            self.loop.close()


@pytest.fixture
def threaded(tmp_path: Path, sock_dir: Path) -> Iterator[ThreadedControl]:
    t = ThreadedControl(tmp_path / "state", sock_dir)
    yield t
    t.close()
