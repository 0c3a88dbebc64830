"""EncryptedFileKeyring on a real file system, with real processes for crashes and races."""

from __future__ import annotations

import base64
import os
import random
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import keyring.core
import keyring.errors
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from localai_authd.keys.backend import (
    CLASS_PATH,
    DEFAULT_CREDENTIAL,
    EncryptedFileKeyring,
    KeyringFileError,
)

SVC = "localai-authd"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _open(directory: Path) -> EncryptedFileKeyring:
    kr = EncryptedFileKeyring()
    kr.keyring_dir = directory
    return kr


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "state" / "keyring"


@pytest.fixture
def kr(store_dir: Path) -> EncryptedFileKeyring:
    return _open(store_dir)


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


# Basic API


def test_roundtrip(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    assert kr.get_password(SVC, "pepper") is None
    kr.set_password(SVC, "pepper", "s3cret")
    kr.set_password(SVC, "upstream", "ключ 🔑")
    kr.set_password("other-service", "pepper", "different")
    assert kr.get_password(SVC, "pepper") == "s3cret"
    assert kr.get_password(SVC, "upstream") == "ключ 🔑"
    assert kr.get_password("other-service", "pepper") == "different"
    # A fresh instance reads from disk, not from the first one's cache.
    assert _open(store_dir).get_password(SVC, "upstream") == "ключ 🔑"


def test_overwrite_and_delete(kr: EncryptedFileKeyring) -> None:
    kr.set_password(SVC, "a", "1")
    kr.set_password(SVC, "a", "2")
    assert kr.get_password(SVC, "a") == "2"
    kr.delete_password(SVC, "a")
    assert kr.get_password(SVC, "a") is None
    with pytest.raises(keyring.errors.PasswordDeleteError):
        kr.delete_password(SVC, "a")


def test_other_instance_sees_writes(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    other = _open(store_dir)
    kr.set_password(SVC, "a", "1")
    assert other.get_password(SVC, "a") == "1"
    other.set_password(SVC, "a", "2")
    assert kr.get_password(SVC, "a") == "2"


def test_file_is_not_plaintext(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    secret = "sk_local_DISTINCTIVE_secret_value_0123456789"
    kr.set_password(SVC, "very-visible-name", secret)
    data = (store_dir / "keyring.enc").read_bytes()
    assert data.startswith(b"LAKR\x01")
    for needle in (secret, "very-visible-name", SVC):
        assert needle.encode() not in data
        assert base64.b64encode(needle.encode()) not in data


def test_fresh_nonce_per_write(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    nonces = set()
    for _ in range(5):
        kr.set_password(SVC, "a", "same value")
        nonces.add((store_dir / "keyring.enc").read_bytes()[5:17])
    assert len(nonces) == 5


def test_modes_from_creation(tmp_path: Path) -> None:
    # With umask 0 a create-then-chmod would be visible as 0644/0755; the modes must come
    # from os.open/mkdir themselves.
    old = os.umask(0)
    try:
        directory = tmp_path / "new" / "dir"
        kr = _open(directory)
        kr.set_password(SVC, "a", "1")
    finally:
        os.umask(old)
    assert _mode(directory) == 0o700
    assert _mode(directory / "keyring.enc") == 0o600
    assert _mode(directory / "keyring.key") == 0o600
    assert _mode(directory / "keyring.lock") == 0o600
    assert len((directory / "keyring.key").read_bytes()) == 32


def test_bad_header_refused(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    kr.set_password(SVC, "a", "1")
    (store_dir / "keyring.enc").write_bytes(b'{"some": "other format"}')
    with pytest.raises(KeyringFileError, match="not a localai-authd keyring"):
        _open(store_dir).get_password(SVC, "a")


# Key sources


def _credentials_dir(tmp_path: Path, content: bytes) -> Path:
    creds = tmp_path / "creds"
    creds.mkdir(mode=0o700)
    (creds / DEFAULT_CREDENTIAL).write_bytes(content)
    return creds


@pytest.mark.parametrize("encoding", ["raw", "hex", "base64", "base64-newline", "urlsafe"])
def test_key_from_credentials_directory(
    encoding: str, tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = os.urandom(32)
    content = {
        "raw": key,
        "hex": key.hex().encode(),
        "base64": base64.b64encode(key),
        "base64-newline": base64.b64encode(key) + b"\n",
        "urlsafe": base64.urlsafe_b64encode(key),
    }[encoding]
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(_credentials_dir(tmp_path, content)))
    kr = _open(store_dir)
    kr.set_password(SVC, "pepper", "value")
    assert kr.get_password(SVC, "pepper") == "value"
    assert not (store_dir / "keyring.key").exists()
    # The store is sealed with exactly that key.
    data = (store_dir / "keyring.enc").read_bytes()
    plaintext = AESGCM(key).decrypt(data[5:17], data[17:], data[:5])
    assert b'"pepper": "value"' in plaintext
    # Without the credential the store is unreadable and no key is invented.
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(KeyringFileError, match="key is missing"):
        _open(store_dir).get_password(SVC, "pepper")
    assert not (store_dir / "keyring.key").exists()


def test_credential_name_is_configurable(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "custom-name").write_bytes(os.urandom(32))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    kr = _open(store_dir)
    kr.credential = "custom-name"
    kr.set_password(SVC, "a", "1")
    assert not (store_dir / "keyring.key").exists()
    with pytest.raises(ValueError, match="invalid credential name"):
        kr.credential = "../etc/passwd"


def test_credentials_directory_without_our_credential_falls_back_to_key_file(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    kr = _open(store_dir)
    kr.set_password(SVC, "a", "1")
    assert (store_dir / "keyring.key").exists()


def test_malformed_credential_refused_without_echoing_it(
    tmp_path: Path, store_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    content = b"not-a-key-but-maybe-a-secret"
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(_credentials_dir(tmp_path, content)))
    with pytest.raises(KeyringFileError, match="does not hold a 32-byte key") as info:
        _open(store_dir).get_password(SVC, "a")
    assert content.decode() not in str(info.value)


def test_wrong_key_refused_and_store_untouched(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    kr.set_password(SVC, "a", "1")
    key_file = store_dir / "keyring.key"
    key_file.write_bytes(os.urandom(32))
    before = _snapshot(store_dir)
    fresh = _open(store_dir)
    with pytest.raises(KeyringFileError, match="cannot be decrypted") as info:
        fresh.get_password(SVC, "a")
    assert str(key_file) in str(info.value)
    with pytest.raises(KeyringFileError, match="cannot be decrypted"):
        fresh.set_password(SVC, "b", "2")
    with pytest.raises(KeyringFileError, match="cannot be decrypted"):
        fresh.delete_password(SVC, "a")
    assert _snapshot(store_dir) == before


def test_missing_key_with_existing_store_refused(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    kr.set_password(SVC, "a", "1")
    (store_dir / "keyring.key").unlink()
    before = _snapshot(store_dir)
    fresh = _open(store_dir)
    for attempt in (
        lambda: fresh.get_password(SVC, "a"),
        lambda: fresh.set_password(SVC, "b", "2"),
    ):
        with pytest.raises(KeyringFileError, match="key is missing"):
            attempt()
    assert _snapshot(store_dir) == before
    assert not (store_dir / "keyring.key").exists()


# Permissions


@pytest.mark.parametrize(
    ("name", "mode"), [("keyring.enc", 0o640), ("keyring.enc", 0o604), ("keyring.key", 0o644)]
)
def test_loose_file_mode_refused(
    kr: EncryptedFileKeyring, store_dir: Path, name: str, mode: int
) -> None:
    kr.set_password(SVC, "a", "1")
    (store_dir / name).chmod(mode)
    with pytest.raises(KeyringFileError, match="chmod 0600"):
        _open(store_dir).get_password(SVC, "a")
    with pytest.raises(KeyringFileError, match="chmod 0600"):
        kr.set_password(SVC, "a", "2")


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_writable_directory_refused(kr: EncryptedFileKeyring, store_dir: Path, mode: int) -> None:
    kr.set_password(SVC, "a", "1")
    store_dir.chmod(mode)
    with pytest.raises(KeyringFileError, match="chmod 0700"):
        _open(store_dir).get_password(SVC, "a")


def test_symlinked_store_refused(kr: EncryptedFileKeyring, store_dir: Path) -> None:
    kr.set_password(SVC, "a", "1")
    enc = store_dir / "keyring.enc"
    enc.rename(store_dir / "elsewhere")
    enc.symlink_to(store_dir / "elsewhere")
    with pytest.raises(KeyringFileError):
        _open(store_dir).get_password(SVC, "a")


# Selection by keyring


def test_priority_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(RuntimeError, match="only when asked"):
        EncryptedFileKeyring.priority  # noqa: B018
    assert not EncryptedFileKeyring.viable

    monkeypatch.setenv("LOCALAI_AUTHD_KEYRING_DIR", str(tmp_path))
    assert 0 < EncryptedFileKeyring.priority < 5  # below SecretService
    monkeypatch.delenv("LOCALAI_AUTHD_KEYRING_DIR")

    creds = tmp_path / "creds"
    creds.mkdir()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert not EncryptedFileKeyring.viable  # somebody else's credentials
    (creds / DEFAULT_CREDENTIAL).write_bytes(os.urandom(32))
    assert 0 < EncryptedFileKeyring.priority < 5


def test_standalone_through_python_keyring_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What any keyring client (the `keyring` CLI, another tool) does with the env var alone.
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", CLASS_PATH)
    monkeypatch.setenv("LOCALAI_AUTHD_KEYRING_DIR", str(tmp_path / "kr"))
    loaded = keyring.core.load_env()
    assert isinstance(loaded, EncryptedFileKeyring)
    loaded.set_password(SVC, "a", "1")
    assert (tmp_path / "kr" / "keyring.enc").exists()


def test_explicit_selection_works_without_directory_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", CLASS_PATH)
    monkeypatch.setenv("KEYRING_PROPERTY_KEYRING_DIR", str(tmp_path / "prop"))
    loaded = keyring.core.load_env()
    assert isinstance(loaded, EncryptedFileKeyring)
    loaded.set_password(SVC, "a", "1")
    assert (tmp_path / "prop" / "keyring.enc").exists()


def test_systemd_state_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STATE_DIRECTORY", f"{tmp_path / 'state'}:{tmp_path / 'other'}")
    EncryptedFileKeyring().set_password(SVC, "a", "1")
    assert (tmp_path / "state" / "keyring.enc").exists()


def test_no_directory_is_a_clear_error() -> None:
    with pytest.raises(KeyringFileError, match="LOCALAI_AUTHD_KEYRING_DIR"):
        EncryptedFileKeyring().get_password(SVC, "a")


# Concurrency and crashes (real processes)

_CRASH_CHILD = """
import sys
from localai_authd.keys.backend import EncryptedFileKeyring
kr = EncryptedFileKeyring()
kr.keyring_dir = sys.argv[1]
run = int(sys.argv[2])
pad = "x" * 50_000  # big enough that a kill often lands inside a write
kr.get_password("svc", "counter")
print("ready", flush=True)
i = 0
while True:
    kr.set_password("svc", "counter", f"{run}:{i}:{pad}")
    print(f"{run}:{i}", flush=True)
    i += 1
"""


def _parse(value: str | None) -> tuple[int, int]:
    assert value is not None
    run, i, pad = value.split(":")
    assert pad == "x" * 50_000, "torn value"
    return int(run), int(i)


def test_kill_9_never_loses_or_corrupts(store_dir: Path) -> None:
    kr = _open(store_dir)
    kr.set_password("svc", "counter", "-1:0:" + "x" * 50_000)
    kr.set_password("svc", "bystander", "unchanged")
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    floor = (-1, 0)  # the latest value reported as written so far
    for run in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CRASH_CHILD, str(store_dir), str(run)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        try:
            assert proc.stdout.readline() == "ready\n"
            threading.Event().wait(rng.uniform(0, 0.05))
        finally:
            proc.send_signal(signal.SIGKILL)
            reported = proc.stdout.read().split()
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        if reported:
            floor = _parse(reported[-1] + ":" + "x" * 50_000)
        last_i = floor[1] if floor[0] == run else -1
        fresh = _open(store_dir)
        stored = _parse(fresh.get_password("svc", "counter"))
        context = f"seed={seed} run={run} stored={stored} floor={floor}"
        # The last reported write survived (or a later one landed), and nothing beyond the
        # one write that may have completed unreported.
        assert floor <= stored <= (run, last_i + 1), context
        assert fresh.get_password("svc", "bystander") == "unchanged", context
    # The next write sweeps the temp files the kills left behind.
    kr.set_password("svc", "after", "1")
    assert sorted(p.name for p in store_dir.iterdir()) == [
        "keyring.enc",
        "keyring.key",
        "keyring.lock",
    ]


_WRITER_CHILD = """
import sys
from localai_authd.keys.backend import EncryptedFileKeyring
kr = EncryptedFileKeyring()
kr.keyring_dir = sys.argv[1]
prefix = sys.argv[2]
kr.get_password("svc", "warm-up")
print("ready", flush=True)
sys.stdin.readline()
for i in range(40):
    kr.set_password("svc", f"{prefix}-{i}", f"value-{prefix}-{i}")
"""


def test_concurrent_processes_keep_each_others_entries(store_dir: Path) -> None:
    _open(store_dir).set_password("svc", "seed", "1")  # both children share one key
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER_CHILD, str(store_dir), prefix],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for prefix in ("p", "q")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None
            assert proc.stdout.readline() == "ready\n"
        for proc in procs:  # release both at once so their writes interleave
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            assert proc.wait(timeout=90) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()
    fresh = _open(store_dir)
    for prefix in ("p", "q"):
        for i in range(40):
            assert fresh.get_password("svc", f"{prefix}-{i}") == f"value-{prefix}-{i}"


def test_concurrent_threads_and_instances(store_dir: Path) -> None:
    shared = _open(store_dir)
    shared.set_password("svc", "seed", "1")
    errors: list[BaseException] = []

    def writer(kr: EncryptedFileKeyring, prefix: str) -> None:
        try:
            for i in range(15):
                kr.set_password("svc", f"{prefix}-{i}", prefix)
        except BaseException as e:  # surfaced below, not lost in the thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(shared, f"s{n}")) for n in range(3)]
    threads += [threading.Thread(target=writer, args=(_open(store_dir), f"o{n}")) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    fresh = _open(store_dir)
    for prefix in ("s0", "s1", "s2", "o0", "o1"):
        assert all(fresh.get_password("svc", f"{prefix}-{i}") == prefix for i in range(15))


def test_two_processes_creating_the_key_agree(store_dir: Path) -> None:
    # Both start with no key and no store; whichever links keyring.key first wins and the
    # other must use that key, so both entries stay readable.
    child = """
import sys
from localai_authd.keys.backend import EncryptedFileKeyring
kr = EncryptedFileKeyring()
kr.keyring_dir = sys.argv[1]
sys.stdin.readline()
kr.set_password("svc", sys.argv[2], "v")
"""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", child, str(store_dir), name], stdin=subprocess.PIPE, text=True
        )
        for name in ("first", "second")
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("\n")
        proc.stdin.close()
    assert [proc.wait(timeout=60) for proc in procs] == [0, 0]
    fresh = _open(store_dir)
    assert fresh.get_password("svc", "first") == "v"
    assert fresh.get_password("svc", "second") == "v"
