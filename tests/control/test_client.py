"""The stdlib control client: typed errors with messages that say what to do."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from localai_authd.control.client import ControlClient, key_path
from localai_authd.errors import (
    EXIT_CONFIG,
    EXIT_SOFTWARE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    AuthdError,
    ConfigError,
    DaemonUnreachable,
    NotFound,
    RemoteError,
    UsageError,
)
from tests.control.conftest import Control


async def call(client: ControlClient, method: str, path: str, body: object = None) -> object:
    return await asyncio.to_thread(client.request, method, path, body)  # type: ignore[arg-type]


async def test_typed_errors_keep_the_daemons_code(control: Control) -> None:
    client = ControlClient(control.sock)
    with pytest.raises(NotFound, match="no key named 'ghost'"):
        await call(client, "GET", key_path("ghost"))
    with pytest.raises(UsageError) as e:
        await call(client, "POST", "/v1/keys", {"name": "x", "colour": "red"})
    assert (e.value.code, e.value.http_status, e.value.exit_code) == (
        "unknown_field", 400, EXIT_USAGE,
    )  # fmt: skip


async def test_internal_error(control: Control) -> None:
    control.levers.fail_status = True
    with pytest.raises(AuthdError) as e:
        await call(ControlClient(control.sock), "GET", "/v1/status")
    assert (e.value.message, e.value.exit_code) == (
        "internal error; see the daemon's log", EXIT_SOFTWARE,
    )  # fmt: skip


async def test_config_error_from_reload_exits_78(control: Control) -> None:
    async def bad_reload() -> dict[str, object]:
        raise ConfigError(["[server] listen: not an address"], "/etc/x.toml")

    control.ctx.reload = bad_reload
    with pytest.raises(AuthdError) as e:
        await call(ControlClient(control.sock), "POST", "/v1/reload")
    assert e.value.exit_code == EXIT_CONFIG and "not an address" in e.value.message


def test_key_names_are_one_path_segment() -> None:
    assert key_path("../../x", "rotate") == "/v1/keys/..%2F..%2Fx/rotate"


async def test_not_our_daemon(sock_dir: Path) -> None:
    async def plain(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        await w.drain()
        w.close()

    path = sock_dir / "other.sock"
    server = await asyncio.start_unix_server(plain, str(path))
    try:
        with pytest.raises(RemoteError, match="is it localai-authd's control socket"):
            await call(ControlClient(path), "GET", "/v1/status")
    finally:
        server.close()
        await server.wait_closed()


async def test_a_silent_daemon_is_bounded_by_the_timeout(sock_dir: Path) -> None:
    gate = asyncio.Event()

    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await gate.wait()
        w.close()

    path = sock_dir / "silent.sock"
    server = await asyncio.start_unix_server(silent, str(path))
    try:
        with pytest.raises(DaemonUnreachable, match=r"did not answer within 0\.3s") as e:
            await call(ControlClient(path, timeout=0.3), "GET", "/v1/status")
        assert e.value.exit_code == EXIT_UNAVAILABLE
    finally:
        gate.set()
        server.close()
        await server.wait_closed()
