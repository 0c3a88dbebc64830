"""Signing-secret rotation: a grace-0 rotation is the emergency brake for every older secret."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from localai_authd.errors import UsageError
from localai_authd.keys.signing import SIGNING_ENTRY
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from tests.keys.test_store import Clock

LEEWAY, MAX_TTL = 0.0, 86400.0


async def _store(tmp_path: Path, clock: Clock) -> KeyStore:
    s = KeyStore(open_vault("file", tmp_path / "state"), clock=clock)
    await s.load()
    return s


def _ok(s: KeyStore, token: str) -> bool:
    return s.check_token(token, LEEWAY, MAX_TTL).identity is not None


async def test_grace_zero_ends_every_older_secret_graced_ones_too(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    ident = (await s.create("a")).identity
    t1, _, _ = s.issue_token(ident, 600, MAX_TTL)
    await s.rotate_signing_secret(grace=3600)
    t2, _, _ = s.issue_token(ident, 600, MAX_TTL)
    assert _ok(s, t1) and _ok(s, t2)
    await s.rotate_signing_secret()  # emergency: no grace
    t3, _, _ = s.issue_token(ident, 600, MAX_TTL)
    assert not _ok(s, t1) and not _ok(s, t2) and _ok(s, t3)
    assert [x["valid_until"] for x in s.signing_status()] == [None]
    await s.close()
    again = await _store(tmp_path, clock)  # durable
    assert not _ok(again, t1) and not _ok(again, t2) and _ok(again, t3)
    await again.close()


async def test_a_graced_rotation_never_extends_an_older_end(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    ident = (await s.create("a")).identity
    t1, _, _ = s.issue_token(ident, 600, MAX_TTL)
    await s.rotate_signing_secret(grace=60)
    await s.rotate_signing_secret(grace=3600)
    clock.t += 61
    assert not _ok(s, t1)
    await s.rotate_signing_secret(grace=10)  # the 3600 s one is cut to 10 s
    ends = [x["valid_until"] for x in s.signing_status()]
    assert ends == [clock.t + 10, clock.t + 10, None]  # the ended 60 s one is gone
    await s.close()


@pytest.mark.parametrize("grace", [-1.0, math.nan, math.inf, -math.inf, 367 * 86400.0])
async def test_bad_grace_is_refused_and_changes_nothing(tmp_path: Path, grace: float) -> None:
    s = await _store(tmp_path, Clock())
    before = s._vault.get(SIGNING_ENTRY)
    with pytest.raises(UsageError):
        await s.rotate_signing_secret(grace)
    assert s._vault.get(SIGNING_ENTRY) == before
    await s.close()


async def test_unreadable_times_in_the_stored_secrets_end_them(tmp_path: Path) -> None:
    clock = Clock()
    s = await _store(tmp_path, clock)
    ident = (await s.create("a")).identity
    t1, _, _ = s.issue_token(ident, 600, MAX_TTL)
    await s.rotate_signing_secret(grace=3600)
    doc = json.loads(s._vault.get(SIGNING_ENTRY) or "")
    for d in doc:
        if d["not_after"] is not None:
            d["not_after"] = math.nan
    s._vault.set(SIGNING_ENTRY, json.dumps(doc))
    await s.close()
    again = await _store(tmp_path, clock)
    assert not _ok(again, t1)
    assert json.dumps(again.signing_status(), allow_nan=False)
    await again.close()
