"""The control plane's audit records never hold a key or a token, in any spelling.

A key pasted where a name, a field or a path goes (an operator's slip, or a script that
mixes up its arguments) reaches the audit trail through the record's ``name`` and
``detail``. The journal line for the same request is scrubbed with the full credential
check; the audit record must be too, including a key whose ``sk_local_`` prefix was cut off
(what a double-click on part of it, or a tool splitting on the first ``_``, leaves).
"""

from __future__ import annotations

import json
from urllib.parse import quote

from localai_authd.redact import looks_like_credential
from tests.control.conftest import Control
from tests.control.wire import http


def _spellings(key: str, token: str) -> list[str]:
    bare = key[len("sk_local_") :]
    return [
        key,
        bare,  # the prefix cut off
        bare.split("_", 1)[1],  # the secret part alone is too short to be named; kept honest
        key.upper(),
        key.replace("_", "-"),
        token,
        token[len("tk_local_") :],
    ]


async def test_no_spelling_of_a_key_reaches_the_control_audit(control: Control) -> None:
    issued = await control.store.create("laptop")
    token, _, _ = control.store.issue_token(issued.identity, 600, 86400)
    sock = control.sock
    presented: list[str] = []
    for secret in _spellings(issued.key, token):
        if not looks_like_credential(secret):
            continue  # not something any of our scanners call a credential
        presented.append(secret)
        q = quote(secret, safe="")
        for method, path, body in (
            ("GET", f"/v1/keys/{q}", None),
            ("POST", f"/v1/keys/{q}/revoke", None),
            ("POST", f"/v1/keys/{q}/rotate", {"grace": 0}),
            ("POST", f"/v1/upstream-keys/{q}", {"secret": "abc"}),
            ("POST", "/v1/keys", {"name": secret}),
            ("POST", "/v1/keys", {"name": "x", "scopes": [secret]}),
            ("POST", "/v1/keys", {"name": "x", "limits": {secret: 1}}),
            ("POST", "/v1/keys", {secret: 1}),
            ("GET", f"/v1/{q}", None),
        ):
            a = await http(sock, method, path, body)
            assert a.status >= 400, (path, body, a.body)
    assert len(presented) >= 4
    text = control.audit_path.read_text()
    for line in text.splitlines():
        rec = json.loads(line)
        for field, value in rec.items():
            if isinstance(value, str):
                assert not looks_like_credential(value), (field, value)
    for secret in presented:
        assert secret not in text
    # The key is still what it was: nothing above changed it.
    assert control.store.check(issued.key).reason == "ok"
