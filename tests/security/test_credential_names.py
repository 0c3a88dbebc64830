"""A name (key, upstream key) or model pattern that looks like a key or a token is refused.

Names and patterns are not secret: they are shown by ``authctl list``, returned in every
answer about the key and written into every audit record of every request the key makes.
A key's secret pasted where its name goes (a script with its arguments swapped, a key whose
``sk_local_`` prefix a tool cut off) would otherwise be created as a name and published
everywhere. Refused with a message that does not repeat it.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest

from localai_authd.keys import format as keyformat
from localai_authd.keys.model import check_models, check_name
from localai_authd.redact import looks_like_credential
from tests.control.conftest import Control
from tests.control.wire import http


def _credential_like() -> list[str]:
    """Name-shaped strings (1-64 of A-Z a-z 0-9 . _ -) that our scanners call credentials."""
    out: list[str] = []
    for _ in range(8):
        key = keyformat.mint(keyformat.new_kid())
        bare = key[len(keyformat.PREFIX) :]
        out += [bare, bare[:40], "x-" + bare, bare + ".old"]
    out += ["sk_local_", "sk_local_x", "SK-LOCAL-abc", "tk_local_1234", "Tk_Local_x"]
    out += ["eyJhbGciOiJI"]
    return out


NAMES = _credential_like()


@pytest.mark.parametrize("name", NAMES)
def test_credential_like_names_and_patterns_are_refused(name: str) -> None:
    assert looks_like_credential(name)
    for problem in (check_name(name), check_models([name])):
        assert problem is not None
        assert name not in problem  # the refusal does not repeat it


@pytest.mark.parametrize("name", ["laptop", "ci-runner-01", "team.alpha_2", "A" * 64, "x"])
def test_ordinary_names_still_pass(name: str) -> None:
    assert check_name(name) is None


async def test_no_operation_accepts_a_credential_like_name(control: Control) -> None:
    sock = control.sock
    for name in NAMES[:12] + NAMES[-6:]:
        q = quote(name, safe="")
        answers = [
            await http(sock, "POST", "/v1/keys", {"name": name}),
            await http(sock, "POST", f"/v1/keys/{q}/import", {"secret": "static-0123456789ab"}),
            await http(sock, "POST", f"/v1/upstream-keys/{q}", {"secret": "abc"}),
            await http(sock, "POST", "/v1/keys", {"name": "m", "models": [name]}),
        ]
        for a in answers:
            assert a.status == 400, (name, a.body)
            assert name.encode() not in a.body
    assert control.store.all() == []
    assert control.store.upstream_key_names() == []
