"""Keys through a real daemon process, driven by authctl: the operator's whole story."""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.daemon_harness import PATIENCE, Daemon
from tests.daemon_harness import status as _status
from tests.fakeupstream import FakeUpstream


@pytest.fixture
async def daemon(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Daemon]:
    d = Daemon(upstream.url, tmp_path / "state")
    async with d:
        yield d


async def test_create_rotate_with_grace_revoke(daemon: Daemon) -> None:
    code, out, _err = await daemon.authctl("create", "laptop")
    assert code == 0
    key = next(w for w in out.split() if w.startswith("sk_local_"))
    assert await _status(daemon.url, key) == 200
    # Inside a grace no busy machine can outlast, both secrets work.
    rotated = await daemon.authctl_json("rotate", "laptop", "--grace", "1h")
    new = rotated["key"]
    assert await _status(daemon.url, key) == 200 and await _status(daemon.url, new) == 200
    # Past a short grace (a sleep can only make it later), the old secret is dead.
    desk = (await daemon.authctl_json("create", "desk"))["key"]
    desk_new = (await daemon.authctl_json("rotate", "desk", "--grace", "1s"))["key"]
    await asyncio.sleep(2)
    assert await _status(daemon.url, desk) == 401 and await _status(daemon.url, desk_new) == 200
    await daemon.authctl("revoke", "laptop")
    assert await _status(daemon.url, new) == 401  # the very next request
    shown = await daemon.authctl_json("show", "laptop")
    assert shown["state"] == "revoked" and "key" not in shown


async def test_revoke_kill_streams_ends_a_stream_in_flight(
    daemon: Daemon, upstream: FakeUpstream
) -> None:
    key = (await daemon.authctl_json("create", "victim"))["key"]
    other = (await daemon.authctl_json("create", "bystander"))["key"]
    upstream.hold_after = 1
    async with aiohttp.ClientSession() as s:
        r1 = await s.post(
            daemon.url + "/api/generate",
            json={"model": "m"},
            headers={"Authorization": f"Bearer {key}"},
        )
        r2 = await s.post(
            daemon.url + "/api/generate",
            json={"model": "m"},
            headers={"Authorization": f"Bearer {other}"},
        )
        await asyncio.wait_for(r1.content.readany(), PATIENCE)
        await asyncio.wait_for(r2.content.readany(), PATIENCE)
        result = await daemon.authctl_json("revoke", "victim", "--kill-streams")
        assert result["streams_killed"] == 1
        with pytest.raises(aiohttp.ClientPayloadError):
            await asyncio.wait_for(r1.read(), PATIENCE)
        upstream.release.set()
        rest = await asyncio.wait_for(r2.read(), PATIENCE)  # another key's stream is untouched
        assert rest.endswith(upstream.ndjson_chunk(upstream.chunks - 1, upstream.chunks, "m"))
        r1.close()
        r2.close()
    await daemon.wait_log('"outcome":"killed"')


async def test_sigkill_during_rotations_loses_nothing(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    d = Daemon(upstream.url, tmp_path / "state")
    names = [f"k{i}" for i in range(4)]
    reported: dict[str, str] = {}
    rng = random.Random(7)
    try:
        await d.start()
        for n in names:
            reported[n] = (await d.authctl_json("create", n))["key"]
        for _round in range(3):  # bounded: three crashes

            async def rotate_loop() -> None:
                i = 0
                while True:
                    n = names[i % len(names)]
                    i += 1
                    code, out, _ = await d.authctl(
                        "--json", "rotate", n, "--grace", "1h", check=False
                    )
                    if code != 0:
                        return  # the daemon is gone
                    import json

                    reported[n] = json.loads(out)["key"]

            loop_task = asyncio.create_task(rotate_loop())
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            assert d.proc is not None
            d.proc.kill()  # SIGKILL, mid-rotation
            await d.proc.wait()
            await asyncio.wait_for(loop_task, 30)
            await d.start()
            listed = await d.authctl_json("list")
            assert sorted(k["name"] for k in listed["keys"]) == names
            for n in names:
                assert await _status(d.url, reported[n]) == 200, n
    finally:
        await d.stop(signal.SIGTERM)
        d.close()


async def test_authctl_token_and_signing_secret_rotation(daemon: Daemon) -> None:
    await daemon.authctl("create", "agent", "--scope", "inference", "--scope", "admin")
    issued = await daemon.authctl_json("token", "agent", "--ttl", "10m", "--scope", "inference")
    token = issued["token"]
    assert token.startswith("tk_local_") and issued["scopes"] == ["inference"]
    assert await _status(daemon.url, token) == 200
    async with (
        aiohttp.ClientSession() as s,
        s.post(
            daemon.url + "/api/pull",
            json={"model": "x"},
            headers={"Authorization": f"Bearer {token}"},
        ) as r,
    ):
        assert r.status == 403  # narrowed to inference
    code, _out, _ = await daemon.authctl("token", "agent", "--ttl", "48h", check=False)
    assert code == 2  # over [tokens] max_ttl
    code, _, err = await daemon.authctl("rotate", check=False)
    assert code == 2 and "either NAME or --signing-secret" in err
    rotated = await daemon.authctl_json("rotate", "--signing-secret", "--grace", "1h")
    assert len(rotated["signing_secrets"]) == 2
    fresh = (await daemon.authctl_json("token", "agent"))["token"]
    assert await _status(daemon.url, token) == 200  # inside the grace
    # Rotate again with a short grace and wait past it (a sleep can only make it later): the
    # grace caps every older secret's end, so the tokens of both older secrets die.
    await daemon.authctl_json("rotate", "--signing-secret", "--grace", "1s")
    newest = (await daemon.authctl_json("token", "agent"))["token"]
    await asyncio.sleep(2)
    assert await _status(daemon.url, fresh) == 401
    assert await _status(daemon.url, token) == 401
    assert await _status(daemon.url, newest) == 200
    for t in (token, fresh, newest):
        assert t not in daemon.stderr()


async def test_authctl_bind_and_unbind_cert(daemon: Daemon) -> None:
    await daemon.authctl("create", "laptop")
    code, out, _ = await daemon.authctl("bind-cert", "laptop", "laptop.example.lan")
    assert code == 0 and "laptop.example.lan" in out
    shown = await daemon.authctl_json("show", "laptop")
    assert shown["cert_subjects"] == ["laptop.example.lan"]
    await daemon.authctl("create", "other")
    code, _, err = await daemon.authctl("bind-cert", "other", "laptop.example.lan", check=False)
    assert code == 4 and "bound to key 'laptop'" in err
    await daemon.authctl("unbind-cert", "laptop", "laptop.example.lan")
    assert (await daemon.authctl_json("show", "laptop"))["cert_subjects"] == []


async def test_authctl_upstream_keys(daemon: Daemon) -> None:
    code, _out, _ = await daemon.authctl("upstream-key", "set", "vllm", stdin=b"s3cret-upstream\n")
    assert code == 0
    listed = await daemon.authctl_json("upstream-key", "list")
    assert listed == {"upstream_keys": ["vllm"]}
    code, _, err = await daemon.authctl(
        "upstream-key", "set", "bad/name", stdin=b"x\n", check=False
    )
    assert code == 2
    code, _, err = await daemon.authctl(
        "upstream-key", "set", "v2", stdin=b"has space\n", check=False
    )
    assert code == 2 and "without spaces" in err
    await daemon.authctl("upstream-key", "delete", "vllm")
    assert (await daemon.authctl_json("upstream-key", "list")) == {"upstream_keys": []}
    code, _, _ = await daemon.authctl("upstream-key", "delete", "vllm", check=False)
    assert code == 3
    assert "s3cret-upstream" not in daemon.stderr()
