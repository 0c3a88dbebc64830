"""The key store: verification, rotation with grace, revocation, import, persistence."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from localai_authd.errors import Conflict, KeyringUnavailable, NotFound, UsageError
from localai_authd.keys.store import KeyStore
from localai_authd.keys.table import PEPPER_ENTRY, TABLE_ENTRY
from localai_authd.keys.vault import open_vault


class Clock:
    """Time we can move: rotation grace and expiry are about time."""

    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


async def _store(tmp_path: Path, clock: Clock | None = None) -> KeyStore:
    s = KeyStore(open_vault("file", tmp_path / "state"), **({"clock": clock} if clock else {}))
    await s.load()
    return s


async def test_create_verify_and_persist(tmp_path: Path) -> None:
    s = await _store(tmp_path)
    issued = await s.create("laptop", models=("llama3*",))
    ident = s.verify(issued.key)
    assert ident is not None and ident.name == "laptop" and ident.models == ("llama3*",)
    # A changed last character (1 key in 62 already ends in "x": never the same one).
    assert s.verify(issued.key[:-1] + ("y" if issued.key.endswith("x") else "x")) is None
    await s.close()
    again = await _store(tmp_path)  # a new process would see the same
    assert again.verify(issued.key) is not None
    assert [i.name for i in again.all()] == ["laptop"]
    await again.close()


async def test_only_a_keyed_hash_is_stored(tmp_path: Path) -> None:
    s = await _store(tmp_path)
    issued = await s.create("a")
    blob = s._vault.get(TABLE_ENTRY)
    assert blob is not None and issued.key not in blob
    secret_part = issued.key.split("_")[3]
    assert secret_part[:20] not in blob
    pepper = bytes.fromhex(s._vault.get(PEPPER_ENTRY) or "")
    digest = hmac.new(pepper, issued.key.encode(), "sha256").hexdigest()
    assert digest in blob
    # The table's HMAC is keyed once per pepper and copied per digest: a new pepper, new keying.
    table = s._table
    assert table.digest("é") == hmac.new(pepper, "é".encode(), "sha256").digest()
    table.pepper = b"another pepper"
    assert table.digest("é") == hmac.new(b"another pepper", "é".encode(), "sha256").digest()
    table.pepper = pepper
    for f in (tmp_path / "state").iterdir():
        assert issued.key.encode() not in f.read_bytes()
    await s.close()


async def test_verify_does_the_same_work_for_known_and_unknown_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A counting wrapper around the real compare_digest (a spy, not a stand-in): the
    # number of comparisons must not depend on whether the key id exists.
    s = await _store(tmp_path)
    good = (await s.create("a")).key
    unknown = "sk_local_" + "Z" * 12 + "_" + good.split("_")[3]
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for presented in (good, good[:-1] + "0", unknown, "legacy-secret-not-ours-123"):
        calls.clear()
        s.verify(presented)
        assert len(calls) == 2, presented
    await s.close()


async def test_rotation_grace_then_expiry(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    old = (await s.create("k")).key
    new = (await s.rotate("k", grace=3600)).key
    assert s.verify(old) is not None and s.verify(new) is not None
    assert s.get("k").public(clock())["previous_secret_valid_until"] == clock.t + 3600
    clock.t += 3599
    assert s.verify(old) is not None
    clock.t += 2
    assert s.verify(old) is None and s.verify(new) is not None
    newest = (await s.rotate("k")).key  # default grace 0: the old secret dies at once
    assert s.verify(new) is None and s.verify(newest) is not None
    await s.close()


async def test_rotation_inside_grace_keeps_at_most_two_secrets(tmp_path: Path) -> None:
    s = await _store(tmp_path)
    k1 = (await s.create("k")).key
    k2 = (await s.rotate("k", grace=60)).key
    k3 = (await s.rotate("k", grace=60)).key
    assert s.verify(k1) is None and s.verify(k2) is not None and s.verify(k3) is not None
    assert len(s.get("k").verifiers) == 2
    await s.close()


async def test_revoke_expiry_and_reuse_of_a_name(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    key = (await s.create("k", expires=clock.t + 10)).key
    assert s.verify(key) is not None
    clock.t += 11
    assert s.verify(key) is None and s.get("k").status(clock()) == "expired"
    with pytest.raises(Conflict):
        await s.rotate("k")
    await s.revoke("k")
    assert s.get("k").state == "revoked" and s.get("k").verifiers == ()
    again = (await s.create("k")).key  # a revoked name may be used again
    assert s.verify(again) is not None and s.verify(key) is None
    await s.close()


async def test_bad_input_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    s = await _store(tmp_path)
    await s.create("ok")
    before = s._vault.get(TABLE_ENTRY)
    for bad in ("../../x", "", "a/b", ".hidden", "x" * 65, "naïve", "a b"):
        with pytest.raises(UsageError):
            await s.create(bad)
    with pytest.raises(UsageError):
        await s.create("y", scopes=("root",))
    with pytest.raises(UsageError):
        await s.create("y", scopes=())
    with pytest.raises(Conflict):
        await s.create("ok")
    with pytest.raises(NotFound):
        await s.rotate("missing")
    with pytest.raises(UsageError):
        await s.rotate("ok", grace=-1)
    for secret in ("short", "has space in it 123456", "sk_local_" + "a" * 30, "é" * 20):
        with pytest.raises(UsageError):
            await s.import_secret("legacy", secret)
    assert s._vault.get(TABLE_ENTRY) == before
    await s.close()


async def test_import_then_rotate_keeps_the_old_secret_through_grace(tmp_path: Path) -> None:
    s = await _store(tmp_path)
    await s.import_secret("legacy", "static-key-from-nginx-map-1234")
    assert s.verify("static-key-from-nginx-map-1234") is not None
    with pytest.raises(Conflict):
        await s.import_secret("other", "static-key-from-nginx-map-1234")
    new = (await s.rotate("legacy", grace=60)).key
    assert s.verify("static-key-from-nginx-map-1234") is not None
    assert s.verify(new) is not None
    await s.close()


async def test_table_without_pepper_refuses_to_load(tmp_path: Path) -> None:
    s = await _store(tmp_path)
    await s.create("k")
    s._vault.delete(PEPPER_ENTRY)
    await s.close()
    with pytest.raises(KeyringUnavailable, match="no pepper"):
        await _store(tmp_path)
