"""The keyring file is removed or damaged under the running daemon.

Verification reads the in-memory index, so requests go on; writes (create, rotate, revoke)
must fail with a clear one-line error and change nothing; a reload must keep the keys in
memory rather than adopt an empty or unreadable store; once the file is back, everything
works and nothing is lost, across a restart too.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from localai_authd.keys.backend import EncryptedFileKeyring, KeyringFileError
from tests.daemon_harness import Daemon
from tests.fakeupstream import FakeUpstream

from .conftest import BASE_CONFIG, SOON, Running, StartDaemon, fill, signal_and_mark

DAMAGES = ["store_removed", "store_corrupted", "store_truncated", "master_key_removed"]


def _damage(state: Path, how: str) -> None:
    store, key = state / "keyring.enc", state / "keyring.key"
    if how == "store_removed":
        store.unlink()
    elif how == "store_corrupted":
        data = bytearray(store.read_bytes())
        data[len(data) // 2] ^= 0xFF  # one flipped byte in the ciphertext: GCM refuses it
        store.write_bytes(bytes(data))
    elif how == "store_truncated":
        store.write_bytes(b"")
    elif how == "master_key_removed":
        key.unlink()


def _restore(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


async def _all_work(d: Running, keys: list[str], upstream: FakeUpstream) -> None:
    for key in keys:
        assert await d.status(key=key) == 200
    assert await d.status(key="sk-local-not-a-key") == 401
    await d.stream(upstream)


@pytest.mark.parametrize("how", DAMAGES)
async def test_reads_go_on_writes_fail_clearly_and_nothing_is_lost(
    start_daemon: StartDaemon, upstream: FakeUpstream, how: str
) -> None:
    d = await start_daemon(upstream.url)
    other = (await d.d.authctl_json("create", "other"))["key"]
    token = (await d.d.authctl_json("token", "other", "--ttl", "1h"))["token"]
    keys = [d.key, other, token]
    state = d.d.state_dir
    saved = {p: p.read_bytes() for p in (state / "keyring.enc", state / "keyring.key")}

    _damage(state, how)

    await _all_work(d, keys, upstream)  # from memory
    for args in (["create", "new"], ["rotate", "other"], ["revoke", "other"]):
        code, out, err = await d.d.authctl(*args, check=False)
        assert code != 0, (args, out)
        line = err.strip()
        assert "\n" not in line and line.startswith("authctl: ") and "keyring" in line, line
    # A refused revoke leaves the key as it was: not revoked, still working.
    await _all_work(d, keys, upstream)
    failed = [r for r in d.audit() if r.get("kind") == "control" and r["outcome"] == "failure"]
    assert [r["action"] for r in failed] == ["create", "rotate", "revoke"]

    # A reload re-reads the keys; a store it cannot read must not replace the ones in memory.
    mark = signal_and_mark(d.d, signal.SIGHUP)
    await d.d.wait_for("READY=1", SOON, after=await d.d.wait_for("RELOADING=1", SOON, after=mark))
    await _all_work(d, keys, upstream)
    assert (await d.d.authctl("create", "new", check=False))[0] != 0

    for path, data in saved.items():
        _restore(path, data)
    new = (await d.d.authctl_json("create", "new"))["key"]
    await _all_work(d, [*keys, new], upstream)

    # Nothing lost, on disk: a fresh start reads every key (and the token still verifies,
    # so the signing secret survived too).
    assert await d.d.stop() == 0
    await d.d.start()
    await _all_work(d, [*keys, new], upstream)
    names = {k["name"] for k in (await d.d.authctl_json("list"))["keys"]}
    assert names == {"k", "other", "new"}


def test_a_store_removed_in_use_is_an_error_not_an_empty_store(tmp_path: Path) -> None:
    """The backend alone: once it has seen its store, a missing store is an error (a write
    would otherwise create a store holding only the entry written, and a read of the
    pepper would return None, which the key store takes for a first start)."""
    kr = EncryptedFileKeyring()
    kr.keyring_dir = tmp_path / "kr"
    kr.set_password("svc", "pepper", "p")
    kr.set_password("svc", "keys", "k")
    (tmp_path / "kr" / "keyring.enc").unlink()
    with pytest.raises(KeyringFileError, match="removed while in use"):
        kr.get_password("svc", "pepper")
    with pytest.raises(KeyringFileError, match="removed while in use"):
        kr.set_password("svc", "keys", "k2")
    assert not (tmp_path / "kr" / "keyring.enc").exists()  # no partial store written
    # A new process that finds no store is at its first start: an empty store is right.
    fresh = EncryptedFileKeyring()
    fresh.keyring_dir = tmp_path / "kr"
    assert fresh.get_password("svc", "pepper") is None


async def test_a_full_disk_under_the_keyring_fails_writes_and_loses_nothing(
    tmp_path: Path, upstream: FakeUpstream, small_fs: Path
) -> None:
    """The state directory (keyring and audit file) on a real 64 KiB tmpfs, filled: the
    atomic write of the store cannot complete, so a change fails and the old store stays."""
    state = small_fs / "state"
    d = Running(Daemon(upstream.url, state, config_text=BASE_CONFIG), "")
    try:
        await d.d.start()
        d.key = (await d.d.authctl_json("create", "k"))["key"]
        before = (state / "keyring.enc").read_bytes()
        filler = fill(small_fs)

        await _all_work(d, [d.key], upstream)
        code, _, err = await d.d.authctl("create", "new", check=False)
        assert code == 69, err
        assert "No space left on device" in err and err.count("\n") == 1, err
        assert (state / "keyring.enc").read_bytes() == before  # the old store, whole
        assert not [p for p in os.listdir(state) if p.endswith(".tmp")]  # no temp left

        filler.unlink()
        new = (await d.d.authctl_json("create", "new"))["key"]
        assert await d.d.stop() == 0
        await d.d.start()
        await _all_work(d, [d.key, new], upstream)
    finally:
        await d.d.stop()
        d.d.close()
