"""`GET /v1/usage` on the real control socket, with the real client."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from localai_authd.control.client import ControlClient
from localai_authd.errors import AuthdError
from localai_authd.usage import UsageStore
from tests.control.conftest import Control


async def _ask(c: Control, body: dict[str, Any] | None = None) -> dict[str, Any]:
    return await asyncio.to_thread(ControlClient(c.sock).request, "GET", "/v1/usage", body)


async def test_usage_by_key_and_since(control: Control, tmp_path: Path) -> None:
    ident = (await control.store.create("laptop")).identity
    other = (await control.store.create("desk")).identity
    u = UsageStore(tmp_path / "usage.json")
    control.ctx.usage = u
    for i, who in ((ident, 3), (other, 1)):
        for _ in range(who):
            u.record(
                {"kind": "request", "key_id": i.kid, "key": i.name, "auth": "key",
                 "client": "127.0.0.1", "tokens_in": 2, "tokens_out": 3}
            )  # fmt: skip
    everyone = await _ask(control)
    assert {r["name"]: r["requests"] for r in everyone["keys"]} == {"laptop": 3, "desk": 1}
    one = await _ask(control, {"name": "laptop", "since": "1d"})
    assert [(r["name"], r["tokens_in"], r["tokens_out"]) for r in one["keys"]] == [("laptop", 6, 9)]
    assert one["since"] == 86400
    with pytest.raises(AuthdError) as e:
        await _ask(control, {"name": "nobody"})
    assert e.value.code == "not_found"
    with pytest.raises(AuthdError) as e:
        await _ask(control, {"since": "forever"})
    assert e.value.code == "invalid_request"
    assert control.audit()[-1]["action"] == "usage"
