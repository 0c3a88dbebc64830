"""An imported secret works the way every credential is presented, or is refused.

``authctl import`` registers a static secret users migrate from. The gateway sends anything
starting with ``tk_local_`` to token verification, so a secret imported with that prefix
(a token pasted by mistake, or a legacy secret that happens to start so) was registered,
reported as working, and then refused on every Bearer or x-api-key request while it still
worked over HTTP Basic. Secrets spelled like our keys or tokens (any case, ``_`` or ``-``)
are refused at import, without being repeated.
"""

from __future__ import annotations

import base64
import random
import string

import aiohttp
import pytest

from localai_authd.errors import UsageError
from localai_authd.keys.store import KeyStore
from tests.conftest import GW

_TAIL = string.ascii_letters + string.digits + "_-"


def _prefixed(rng: random.Random) -> list[str]:
    out = []
    for prefix in ("tk_local_", "sk_local_"):
        for _ in range(6):
            p = "".join(c.upper() if rng.random() < 0.5 else c for c in prefix)
            if rng.random() < 0.5:
                p = p.replace("_", "-")
            out.append(p + "".join(rng.choice(_TAIL) for _ in range(rng.randint(8, 60))))
    return out


PREFIXED = _prefixed(random.Random(7))


@pytest.mark.parametrize("secret", PREFIXED)
async def test_secrets_spelled_like_ours_are_refused(store: KeyStore, secret: str) -> None:
    with pytest.raises(UsageError) as e:
        await store.import_secret("legacy", secret)
    assert secret not in e.value.message
    assert store.all() == []


async def test_a_live_token_cannot_be_imported_as_a_static_secret(store: KeyStore) -> None:
    ident = (await store.create("k")).identity
    token, _, _ = store.issue_token(ident, 600, 86400)
    with pytest.raises(UsageError):
        await store.import_secret("legacy", token)


@pytest.mark.parametrize("seed", range(6))
async def test_what_import_accepts_works_in_every_header(gw: GW, seed: int) -> None:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "_-.~+/=:!$"
    secret = "".join(rng.choice(alphabet) for _ in range(rng.randint(16, 80)))
    await gw.store.import_secret("legacy", secret)
    basic = base64.b64encode(f"legacy:{secret}".encode()).decode()
    async with aiohttp.ClientSession() as s:
        for headers in (
            {"Authorization": f"Bearer {secret}"},
            {"x-api-key": secret},
            {"Authorization": f"Basic {basic}"},
        ):
            async with s.get(gw.url + "/api/tags", headers=headers) as r:
                assert r.status == 200, (headers, await r.text())
