"""A fault of the gateway's own is audited as one: status 500, outcome ``internal_error``.

Until now such a request left a record with status 0 and outcome ``ok`` (the keep_alive
OverflowError did): a failure the audit trail showed as a success. The fault is injected
(monkeypatch) because the point is the next, unknown bug: any exception raised inside the
pipeline after authentication.
"""

from __future__ import annotations

import aiohttp
import pytest

from localai_authd.gateway import inspection
from tests.conftest import GW


@pytest.mark.parametrize("exc", [RuntimeError, OverflowError, KeyError, RecursionError])
@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/generate", {"model": "llama3"}), ("/v1/chat/completions", {"model": "x"})],
)
async def test_a_fault_of_ours_is_audited_as_a_500(
    gw: GW, monkeypatch: pytest.MonkeyPatch, exc: type[Exception], path: str, body: object
) -> None:
    def broken(*_: object) -> None:
        raise exc("injected")

    monkeypatch.setattr(inspection, "decide_models", broken)
    key = await gw.key()
    async with (
        aiohttp.ClientSession() as http,
        http.post(gw.url + path, json=body, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status == 500
        await r.read()
    rec = gw.audit()[-1]
    assert (rec["status"], rec["outcome"], rec["reason"]) == (500, "internal_error", "internal")
    assert gw.upstream.seen == []
