"""Why a credential is refused: each reason, the presented kid, and the same work for all."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from tests.keys.test_store import Clock


async def _store(tmp_path: Path, clock: Clock) -> KeyStore:
    s = KeyStore(open_vault("file", tmp_path / "state"), clock=clock)
    await s.load()
    return s


async def test_each_reason_and_the_presented_kid(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    k1 = (await s.create("a")).key
    kid = s.get("a").kid
    assert (s.check(k1).reason, s.check(k1).kid) == ("ok", kid)
    unknown = "sk_local_" + "Z" * 12 + "_" + k1.split("_")[3]
    # a well-formed key of an unknown kid: the kid it presented is reported
    from localai_authd.keys import format as kf

    forged = kf.mint("Z" * 12)
    assert (s.check(forged).reason, s.check(forged).kid) == ("unknown_key", "Z" * 12)
    assert s.check(unknown).reason == "unknown_key"  # bad checksum: not ours, not known
    assert s.check("legacy-secret-nobody-has-123").reason == "unknown_key"
    wrong = kf.mint(kid)  # right kid, wrong secret
    assert (s.check(wrong).reason, s.check(wrong).kid) == ("wrong_secret", kid)

    k2 = (await s.rotate("a", grace=60)).key
    assert s.check(k1).reason == "ok" and s.check(k2).reason == "ok"
    clock.t += 61
    assert (s.check(k1).reason, s.check(k1).kid) == ("secret_retired", kid)  # past grace
    k3 = (await s.rotate("a")).key  # grace 0: k2 ends now
    assert s.check(k2).reason == "secret_retired" and s.check(k1).reason == "secret_retired"

    await s.suspend("a")
    assert (s.check(k3).reason, s.check(k3).kid) == ("suspended", kid)
    assert s.check(wrong).reason == "wrong_secret"  # a stranger learns nothing more
    await s.resume("a")
    assert s.check(k3).reason == "ok"

    await s.edit("a", expires=clock.t + 10)
    clock.t += 11
    assert s.check(k3).reason == "expired"

    await s.revoke("a")
    assert (s.check(k3).reason, s.check(k3).kid) == ("revoked", kid)
    await s.delete("a")
    assert s.check(k3).reason == "unknown_key"
    await s.close()


async def test_imported_secrets_are_named_by_their_identity(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    legacy = "static-key-from-nginx-map-1234"
    await s.import_secret("legacy", legacy)
    kid = s.get("legacy").kid
    assert s.check(legacy).kid == kid
    await s.rotate("legacy")
    assert (s.check(legacy).reason, s.check(legacy).kid) == ("secret_retired", kid)
    await s.revoke("legacy")
    assert (s.check(legacy).reason, s.check(legacy).kid) == ("revoked", kid)
    await s.close()


async def test_reasons_survive_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    k1 = (await s.create("a")).key
    await s.rotate("a")
    await s.close()
    again = await _store(tmp_path, clock)
    assert again.check(k1).reason == "secret_retired"
    await again.close()


async def test_basic_with_another_keys_name_is_wrong_secret(tmp_path: Path) -> None:
    s = await _store(tmp_path, Clock())
    ka = (await s.create("a")).key
    await s.create("b")
    v = s.check_basic("b", ka)
    assert (v.identity, v.reason) == (None, "wrong_secret")
    assert s.check_basic("a", ka).identity is not None
    await s.close()


async def test_the_work_is_the_same_for_every_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A counting spy around the real compare_digest: every verdict costs two comparisons.
    clock = Clock()
    s = await _store(tmp_path, clock)
    from localai_authd.keys import format as kf

    k_ok = (await s.create("ok")).key
    k_old = (await s.create("rot")).key
    await s.rotate("rot", grace=60)
    k_sus = (await s.create("sus")).key
    await s.suspend("sus")
    k_rev = (await s.create("rev")).key
    await s.revoke("rev")
    legacy = "static-key-from-nginx-map-1234"
    await s.import_secret("legacy", legacy)
    presented = {
        "ok": k_ok,
        "graced": k_old,
        "suspended": k_sus,
        "revoked": k_rev,
        "wrong": kf.mint(s.get("ok").kid),
        "unknown": kf.mint("Q" * 12),
        "legacy": legacy,
        "nonsense": "x" * 40,
    }
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for label, p in presented.items():
        calls.clear()
        s.check(p)
        assert len(calls) == 2, label
    clock.t += 61
    calls.clear()
    assert s.check(k_old).reason == "secret_retired" and len(calls) == 2
    await s.close()


async def test_a_suspended_key_can_be_rotated_and_stays_suspended(tmp_path: Path) -> None:
    s = await _store(tmp_path, Clock())
    leaked = (await s.create("a")).key
    await s.suspend("a")
    fresh = (await s.rotate("a")).key
    assert s.check(fresh).reason == "suspended" and s.check(leaked).reason == "secret_retired"
    await s.resume("a")
    assert s.check(fresh).reason == "ok" and s.check(leaked).reason == "secret_retired"
    await s.close()
