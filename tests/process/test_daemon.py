"""The real daemon process: readiness, systemd notifications, reload, drain, fail-closed."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.daemon_harness import PATIENCE, Daemon
from tests.fakeupstream import FakeUpstream


@pytest.fixture
async def daemon(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Daemon]:
    d = Daemon(upstream.url, tmp_path / "state")
    yield d
    try:
        await d.stop()
    finally:
        d.close()


def _h(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_notify_sequence_ready_watchdog_reload_stopping(daemon: Daemon) -> None:
    await daemon.start()
    ready = await daemon.wait_for("READY=1")
    # READY=1 only once the listener is bound: the port answers right away.
    async with aiohttp.ClientSession() as s, s.get(daemon.url + "/api/tags") as r:
        assert r.status == 401
    wd = await daemon.wait_for("WATCHDOG=1", 5, after=ready)
    daemon.send(signal.SIGHUP)
    rel = await daemon.wait_for("RELOADING=1", 5, after=wd)
    assert daemon.messages[rel + 1].startswith("MONOTONIC_USEC=")
    ready2 = await daemon.wait_for("READY=1", 5, after=rel)
    assert await daemon.stop() == 0
    stopping = await daemon.wait_for("STOPPING=1", 5, after=ready2)
    assert ready < wd < rel < ready2 < stopping
    assert any(m.startswith("STATUS=serving") for m in daemon.messages)


async def test_create_a_key_and_stream_through_the_real_process(
    daemon: Daemon, upstream: FakeUpstream
) -> None:
    await daemon.start()
    created = await daemon.authctl_json("create", "laptop")
    key = created["key"]
    async with (
        aiohttp.ClientSession() as s,
        s.post(daemon.url + "/api/generate", json={"model": "llama3"}, headers=_h(key)) as r,
    ):
        assert r.status == 200
        assert await r.read() == upstream.stream_bytes("ndjson")
    log = await daemon.wait_log('"path":"/api/generate"')
    assert '"key":"laptop"' in log
    assert key not in log  # the audit lines in the log carry no secret


async def test_sigterm_drains_streams_in_flight(daemon: Daemon, upstream: FakeUpstream) -> None:
    await daemon.start()
    key = (await daemon.authctl_json("create", "k"))["key"]
    upstream.hold_after = 1
    async with (
        aiohttp.ClientSession() as s,
        s.post(daemon.url + "/api/generate", json={"model": "llama3"}, headers=_h(key)) as r,
    ):
        first = await asyncio.wait_for(r.content.readany(), PATIENCE)
        daemon.send(signal.SIGTERM)
        stopping = await daemon.wait_for("STOPPING=1")
        # This status line follows the listeners' closing: from here new connections are
        # refused while the old stream goes on.
        await daemon.wait_for("STATUS=stopping: 1 request(s) draining", after=stopping)
        with pytest.raises(aiohttp.ClientConnectorError):
            async with aiohttp.ClientSession() as s2:
                await s2.get(daemon.url + "/api/tags")
        upstream.release.set()
        rest = await asyncio.wait_for(r.read(), PATIENCE)
    assert first + rest == upstream.stream_bytes("ndjson")
    assert daemon.proc is not None
    assert await asyncio.wait_for(daemon.proc.wait(), PATIENCE) == 0


async def test_drain_is_bounded(tmp_path: Path, upstream: FakeUpstream) -> None:
    d = Daemon(upstream.url, tmp_path / "state", config_text='[server]\ndrain_timeout = "1s"\n')
    try:
        await d.start()
        key = (await d.authctl_json("create", "k"))["key"]
        upstream.hold_after = 1
        async with (
            aiohttp.ClientSession() as s,
            s.post(d.url + "/api/generate", json={"model": "llama3"}, headers=_h(key)) as r,
        ):
            await asyncio.wait_for(r.content.readany(), PATIENCE)
            d.send(signal.SIGTERM)
            assert d.proc is not None
            # The stream is held for good: only the 1 s drain bound can end it, then exit 0.
            assert await asyncio.wait_for(d.proc.wait(), PATIENCE) == 0
            with pytest.raises(aiohttp.ClientPayloadError):
                await r.read()
    finally:
        d.close()


async def test_reload_applies_a_valid_config_and_refuses_a_bad_one(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    d = Daemon(upstream.url, tmp_path / "state", config_text="[server]\nmax_body_bytes = 100\n")
    try:
        await d.start()
        key = (await d.authctl_json("create", "k"))["key"]
        body = {"model": "llama3", "prompt": "x" * 200, "stream": False}
        async with aiohttp.ClientSession() as s:
            async with s.post(d.url + "/api/generate", json=body, headers=_h(key)) as r:
                assert r.status == 413
            d.config_path.write_text("[server]\nmax_body_bytes = 100000\n")
            result = await d.authctl_json("reload")
            assert result["reloaded"] is True
            async with s.post(d.url + "/api/generate", json=body, headers=_h(key)) as r:
                assert r.status == 200
            d.config_path.write_text("[server]\nmax_body_bytes = -5\n")
            code, _, err = await d.authctl("reload", check=False)
            assert code != 0 and "max_body_bytes" in err
            async with s.post(d.url + "/api/generate", json=body, headers=_h(key)) as r:
                assert r.status == 200  # the old, valid config still applies
    finally:
        await d.stop()
        d.close()


async def test_a_refused_reload_still_reopens_the_audit_file(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """logrotate moves the file aside and sends SIGHUP; a bad config on disk must not leave
    the records going to the moved file."""
    audit = tmp_path / "audit.jsonl"
    d = Daemon(upstream.url, tmp_path / "state", config_text=f'[audit]\nfile = "{audit}"\n')
    try:
        await d.start()
        key = (await d.authctl_json("create", "k"))["key"]
        audit.rename(tmp_path / "audit.jsonl.1")
        d.config_path.write_text(f'[audit]\nfile = "{audit}"\n[server]\nmax_body_bytes = -5\n')
        code, _, err = await d.authctl("reload", check=False)
        assert code != 0 and "max_body_bytes" in err
        async with (
            aiohttp.ClientSession() as s,
            s.get(d.url + "/api/tags", headers=_h(key)) as r,
        ):
            assert r.status == 200
        for _ in range(600):  # bounded (60 s): a liveness bound, never a speed measure
            if audit.exists() and '"path":"/api/tags"' in audit.read_text():
                break
            await asyncio.sleep(0.1)
        assert '"path":"/api/tags"' in audit.read_text()
        assert '"path":"/api/tags"' not in (tmp_path / "audit.jsonl.1").read_text()
    finally:
        await d.stop()
        d.close()


@pytest.mark.parametrize(
    "backend",
    [
        "keyring.backends.fail.Keyring",
        "keyrings.alt.file.PlaintextKeyring",
        "keyring.backends.null.Keyring",
    ],
)
async def test_refuses_to_start_on_an_untrusted_keyring(
    tmp_path: Path, upstream: FakeUpstream, backend: str
) -> None:
    d = Daemon(upstream.url, tmp_path / "state", extra_args=["--keyring-backend", backend])
    try:
        await d.start(wait=False)
        assert d.proc is not None
        code = await asyncio.wait_for(d.proc.wait(), 30)
        assert code != 0
        assert "keyring" in d.stderr().lower()
        with pytest.raises(aiohttp.ClientConnectorError):
            async with aiohttp.ClientSession() as s:
                await s.get(d.url + "/api/tags")
    finally:
        d.close()


async def test_auto_backend_follows_python_keyring_backend(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    d = Daemon(
        upstream.url,
        tmp_path / "state",
        extra_args=["--keyring-backend", "auto"],
        env={"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"},
    )
    try:
        await d.start(wait=False)
        assert d.proc is not None
        assert await asyncio.wait_for(d.proc.wait(), 30) != 0
    finally:
        d.close()


async def test_garbage_in_a_credential_header_never_reaches_the_log(daemon: Daemon) -> None:
    await daemon.start()
    key = (await daemon.authctl_json("create", "k"))["key"]
    secret = key[20:50]
    cases = [
        # a control character inside the header value: aiohttp's parser refuses the request
        # and would log the raw line with the credential in it
        b"GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + key.encode()
        + b"\x01x\r\n\r\n",
        b"GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization : Bearer "
        + key.encode()
        + b"\r\n\r\n",
        b"GET /api/tags HTTP/1.1\r\nHost: x\r\nx-api-key: " + key.encode() + b"\r\n folded\r\n\r\n",
        b"GET /api/tags HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + key.encode()
        + b"\nBad: bare-lf\r\n\r\n",
    ]
    for raw in cases:
        r, w = await asyncio.open_connection("127.0.0.1", daemon.port)
        w.write(raw)
        await w.drain()
        answer = await asyncio.wait_for(r.read(65536), PATIENCE)
        assert b" 400 " in answer.split(b"\r\n")[0], answer[:80]
        assert key.encode() not in answer and secret.encode() not in answer
        w.close()
    log = await daemon.wait_log("details withheld")
    assert secret not in log
