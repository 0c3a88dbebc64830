"""Every name the control plane accepts is addressable by every operation; every name it
refuses is refused everywhere; every request, refused or unknown, leaves an audit record."""

from __future__ import annotations

import random
import string
from urllib.parse import quote

import pytest

from tests.control.conftest import Control
from tests.control.wire import http, send_raw
from tests.keys.test_model import TRICKS


def _accepted_names() -> list[str]:
    rng = random.Random(10_4)
    alphabet = string.ascii_letters + string.digits + "._-"
    names = ["a", "Z", "0", "a..", "a.-_", "1-", "x" * 64, "A.b_c-D", "con", "nul.txt"]
    for _ in range(10):
        first = rng.choice(string.ascii_letters + string.digits)
        names.append(first + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 63))))
    return names


@pytest.mark.parametrize("name", _accepted_names())
async def test_an_accepted_name_works_with_every_operation(control: Control, name: str) -> None:
    sock = control.sock
    created = await http(sock, "POST", "/v1/keys", {"name": name})
    assert created.status == 201, created.body
    p = f"/v1/keys/{quote(name, safe='')}"
    steps: list[tuple[str, str, dict[str, object] | None]] = [
        ("GET", p, None),
        ("POST", p + "/set", {"models": ["llama3*"], "limits": {"requests_per_minute": 5}}),
        ("POST", p + "/token", {"ttl": "10m"}),
        ("POST", p + "/bind-cert", {"subject": f"{name}.example"}),
        ("POST", p + "/unbind-cert", {"subject": f"{name}.example"}),
        ("POST", p + "/suspend", None),
        ("POST", p + "/resume", None),
        ("POST", p + "/rotate", {"grace": "1m"}),
        ("POST", p + "/revoke", None),
        ("POST", p + "/delete", None),
    ]
    for method, path, body in steps:
        a = await http(sock, method, path, body)
        assert a.status == 200, (path, a.body)
    # percent-encoding every character of the name addresses the same key
    await http(sock, "POST", "/v1/keys", {"name": name})
    encoded = "".join(f"%{b:02X}" for b in name.encode())
    assert (await http(sock, "GET", f"/v1/keys/{encoded}")).status == 200
    up = await http(sock, "POST", f"/v1/upstream-keys/{quote(name, safe='')}", {"secret": "s3"})
    assert up.status == 200
    gone = await http(sock, "POST", f"/v1/upstream-keys/{quote(name, safe='')}/delete")
    assert gone.status == 200


def _hostile_names() -> list[str]:
    out = []
    for trick in TRICKS:
        out += ["backdoor" + trick, trick + "backdoor", "back" + trick + "door"]
    # "\uff41" is a fullwidth "a"; "\u200b" a zero-width space
    return [*out, "", "-a", ".a", "a/b", "../x", "x" * 65, "na\u00efve", "\uff41", "a\u200bb"]


@pytest.mark.parametrize("name", _hostile_names())
async def test_a_refused_name_is_refused_everywhere_and_audited(
    control: Control, name: str
) -> None:
    sock = control.sock
    before = len(control.audit())
    a = await http(sock, "POST", "/v1/keys", {"name": name})
    assert a.status == 400, a.body
    assert control.store.all() == []
    b = await http(sock, "POST", "/v1/keys/x/import", {"secret": "static-key-0123456789"})
    assert b.status == 201  # a good one, so the path operations below have a target
    p = f"/v1/keys/{quote(name, safe='')}"
    for method, path in (
        ("GET", p),
        ("POST", p + "/rotate"),
        ("POST", p + "/revoke"),
        ("POST", p + "/set"),
        ("POST", p + "/suspend"),
        ("POST", p + "/delete"),
        ("POST", f"/v1/upstream-keys/{quote(name, safe='')}"),
    ):
        r = await http(sock, method, path, {"secret": "s3"} if "upstream" in path else None)
        assert r.status in (400, 404), (path, r.body)
    assert [i.name for i in control.store.all()] == ["x"]
    assert control.store.upstream_key_names() == []
    records = control.audit()[before:]
    assert len(records) == 9
    assert all(r["outcome"] == "failure" for i, r in enumerate(records) if i != 1)


async def test_unknown_and_malformed_requests_are_audited(control: Control) -> None:
    sock = control.sock
    before = len(control.audit())
    cases = [
        b"GET /v1/nothing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/keys/%ZZ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /v1/keys/%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"POST /v1/keys HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n{x}",
        b"GARBAGE\r\n\r\n",
        b"GET /v1/keys HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /v1/keys HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n",
        b"POST /v1/keys HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
        b"POST /v1/keys HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n{}",
        b"GET /v1/keys?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]
    statuses = []
    for raw in cases:
        out = await send_raw(sock, raw)
        statuses.append(int(out.split(b" ", 2)[1]))
        assert b"aiohttp" not in out and b"Python" not in out, out
    assert all(400 <= s < 500 for s in statuses), statuses
    records = control.audit()[before:]
    assert len(records) == len(cases), records
    assert {r["action"] for r in records} >= {"unknown", "malformed"}
    assert all(r["outcome"] == "failure" for r in records)


async def test_a_stored_name_from_before_the_fix_becomes_addressable(control: Control) -> None:
    """A key named "backdoor\\n" created by an older version: renamed, suspended, and then
    shown, revoked and deleted like any other."""
    import json

    from localai_authd.keys.table import TABLE_ENTRY

    key = (await control.store.create("backdoor")).key
    vault = control.store._vault
    doc = json.loads(vault.get(TABLE_ENTRY) or "")
    doc["keys"][0]["name"] = "backdoor\n"
    vault.set(TABLE_ENTRY, json.dumps(doc))
    await control.store.load()
    kid = control.store.check(key).kid
    assert control.store.check(key).reason == "suspended"
    listed = (await http(control.sock, "GET", "/v1/keys")).doc["keys"]
    assert [k["name"] for k in listed] == [f"invalid-name-{kid}"]
    p = f"/v1/keys/invalid-name-{kid}"
    assert (await http(control.sock, "GET", p)).status == 200
    assert (await http(control.sock, "POST", p + "/revoke")).status == 200
    assert (await http(control.sock, "POST", p + "/delete")).status == 200
    assert control.store.check(key).reason == "unknown_key"
