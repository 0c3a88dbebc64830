"""set, suspend, resume, delete over the real socket: durable before the answer."""

from __future__ import annotations

import time
from pathlib import Path

from localai_authd.keys.model import Limits
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from tests.control.conftest import Control
from tests.control.wire import http


async def _reloaded(tmp_path: Path) -> KeyStore:
    """What a new process would read from the same keyring."""
    s = KeyStore(open_vault("file", tmp_path / "state"))
    await s.load()
    return s


async def test_set_edits_without_rotating(control: Control, tmp_path: Path) -> None:
    key = (await control.store.create("laptop", models=("llama3*",))).key
    vids = [v.vid for v in control.store.get("laptop").verifiers]
    body = {
        "scopes": ["inference", "admin"],
        "models": ["qwen*", "llama3*"],
        "expires": "2h",
        "limits": {"requests_per_minute": 60, "max_keep_alive": "5m", "concurrent_streams": 2},
    }
    a = await http(control.sock, "POST", "/v1/keys/laptop/set", body)
    assert a.status == 200, a.body
    assert a.doc["scopes"] == ["inference", "admin"] and a.doc["models"] == ["qwen*", "llama3*"]
    assert 7100 < a.doc["expires"] - time.time() <= 7200
    assert a.doc["limits"]["requests_per_minute"] == 60
    assert a.doc["limits"]["max_keep_alive"] == 300.0
    assert control.store.verify(key) is not None  # same secret
    assert [v.vid for v in control.store.get("laptop").verifiers] == vids
    again = await _reloaded(tmp_path)
    ident = again.get("laptop")
    assert ident.limits == Limits(requests_per_minute=60, concurrent_streams=2, max_keep_alive=300)
    assert ident.scopes == ("inference", "admin")
    await again.close()
    # null resets one limit to the config default; "never" clears the expiry
    body2 = {"limits": {"requests_per_minute": None}, "expires": "never"}
    b = await http(control.sock, "POST", "/v1/keys/laptop/set", body2)
    assert b.status == 200 and b.doc["expires"] is None
    assert b.doc["limits"]["requests_per_minute"] is None
    assert b.doc["limits"]["concurrent_streams"] == 2


async def test_set_refuses_bad_values_and_changes_nothing(control: Control) -> None:
    await control.store.create("laptop")
    before = control.snapshot()
    bad_bodies = [
        {"scopes": ["root"]},
        {"scopes": []},
        {"models": ["llama["]},
        {"models": ["llama3\n"]},
        {"expires": "-1h"},
        {"expires": 0},
        {"expires": 1e308},
        {"expires": "1h\n"},
        {"limits": {"requests_per_minute": -1}},
        {"limits": {"requests_per_minute": 1.5}},
        {"limits": {"max_keep_alive": -1}},
        {"limits": {"max_keep_alive": "forever"}},
        {"limits": {"bogus": 1}},
        {"limits": [1]},
        {"state": "active"},
    ]
    for body in bad_bodies:
        a = await http(control.sock, "POST", "/v1/keys/laptop/set", body)
        assert a.status == 400, (body, a.body)
    for raw in (
        b'{"expires": NaN}',
        b'{"expires": Infinity}',
        b'{"limits": {"max_keep_alive": NaN}}',
    ):
        a = await http(control.sock, "POST", "/v1/keys/laptop/set", raw)
        assert a.status == 400, (raw, a.body)
    assert control.snapshot() == before
    await control.store.revoke("laptop")
    a = await http(control.sock, "POST", "/v1/keys/laptop/set", {"scopes": ["admin"]})
    assert a.status == 409


async def test_suspend_resume(control: Control, tmp_path: Path) -> None:
    key = (await control.store.create("laptop")).key
    a = await http(control.sock, "POST", "/v1/keys/laptop/suspend", {"kill_streams": True})
    assert a.status == 200 and a.doc["state"] == "suspended" and a.doc["streams_killed"] == 0
    assert control.store.check(key).reason == "suspended"
    again = await _reloaded(tmp_path)
    assert again.check(key).reason == "suspended"
    await again.close()
    assert (await http(control.sock, "POST", "/v1/keys/laptop/suspend")).status == 200  # idempotent
    b = await http(control.sock, "POST", "/v1/keys/laptop/resume")
    assert b.status == 200 and b.doc["state"] == "active"
    assert control.store.verify(key) is not None
    listed = (await http(control.sock, "GET", "/v1/status")).doc
    assert listed["keys"]["suspended"] == 0


async def test_delete_only_a_revoked_key(control: Control, tmp_path: Path) -> None:
    await control.store.create("laptop")
    a = await http(control.sock, "POST", "/v1/keys/laptop/delete")
    assert a.status == 409 and "revoke it first" in a.doc["error"]["message"]
    await control.store.revoke("laptop")
    b = await http(control.sock, "POST", "/v1/keys/laptop/delete")
    assert b.status == 200 and b.doc["deleted"] is True
    assert (await http(control.sock, "GET", "/v1/keys/laptop")).status == 404
    again = await _reloaded(tmp_path)
    assert again.all() == []
    await again.close()
    assert (await http(control.sock, "POST", "/v1/keys/laptop/delete")).status == 404
    actions = [r["action"] for r in control.audit()]
    assert actions.count("delete") == 3


async def test_create_takes_limits(control: Control) -> None:
    body = {"name": "x", "limits": {"tokens_per_day": 100000, "max_num_ctx": 8192}}
    a = await http(control.sock, "POST", "/v1/keys", body)
    assert a.status == 201, a.body
    assert a.doc["limits"]["tokens_per_day"] == 100000
    assert control.store.get("x").limits.max_num_ctx == 8192
    bad = await http(control.sock, "POST", "/v1/keys", {"name": "y", "limits": {"max_num_ctx": -5}})
    assert bad.status == 400


BAD_DURATIONS = [
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"1e308",
    b"-1",
    b'"1h\\n"',
    b'"9999999999999d"',
]


async def test_every_duration_is_finite_and_bounded(control: Control) -> None:
    await control.store.create("k")
    sigs_before = control.store.signing_status()
    for raw in BAD_DURATIONS:
        for path, field in (
            ("/v1/keys", "expires"),
            ("/v1/keys/k/rotate", "grace"),
            ("/v1/keys/k/token", "ttl"),
            ("/v1/keys/k/set", "expires"),
            ("/v1/signing-secret/rotate", "grace"),
        ):
            extra = b'"name": "n", ' if path == "/v1/keys" else b""
            body = b"{" + extra + b'"' + field.encode() + b'": ' + raw + b"}"
            a = await http(control.sock, "POST", path, body)
            assert a.status == 400, (path, raw, a.body)
    assert [i.name for i in control.store.all()] == ["k"]
    assert control.store.signing_status() == sigs_before


async def test_a_stored_nan_never_breaks_the_listing(control: Control, tmp_path: Path) -> None:
    import json

    from localai_authd.keys.table import TABLE_ENTRY

    await control.store.create("k")
    vault = open_vault("file", tmp_path / "state")
    doc = json.loads(vault.get(TABLE_ENTRY) or "")
    doc["keys"][0]["expires"] = float("nan")
    doc["keys"][0]["created"] = float("inf")
    vault.set(TABLE_ENTRY, json.dumps(doc))
    await control.store.load()  # as a reload would
    listed = await http(control.sock, "GET", "/v1/keys")
    assert listed.status == 200 and b"NaN" not in listed.body and b"Infinity" not in listed.body
    assert listed.doc["keys"][0]["state"] == "expired"  # fail closed
    status = await http(control.sock, "GET", "/v1/status")
    assert status.status == 200
