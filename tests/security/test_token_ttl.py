"""A token asked for with a lifetime of zero is refused, not given the default hour.

``authctl token NAME --ttl 0`` (or ``{"ttl": 0}`` on the control socket) issued a token
valid for ``[tokens] default_ttl``: the zero was read as "not given". Every spelling of a
zero lifetime is now a 400, as the token endpoint already answered.
"""

from __future__ import annotations

import pytest

from tests.control.conftest import Control
from tests.control.wire import http


@pytest.mark.parametrize("ttl", [0, 0.0, -0.0, "0", "0s", "0m", "0h0m", "00"])
async def test_a_zero_lifetime_is_refused(control: Control, ttl: object) -> None:
    await control.store.create("k")
    a = await http(control.sock, "POST", "/v1/keys/k/token", {"ttl": ttl})
    assert a.status == 400, a.body
    assert "token" not in a.doc
    assert control.audit()[-1]["outcome"] == "failure"


@pytest.mark.parametrize("ttl", [None, 1, "90s", "1h"])
async def test_other_lifetimes_still_work(control: Control, ttl: object) -> None:
    await control.store.create("k")
    body = {} if ttl is None else {"ttl": ttl}
    a = await http(control.sock, "POST", "/v1/keys/k/token", body)
    assert a.status == 200, a.body
