"""``authctl audit`` never writes a client's control characters to the operator's terminal.

Audit records carry what clients sent: the model named in a body, a path, a user agent.
Any key holder (even one limited to one model) sending ``{"model": "\\u001b]0;...\\u0007"}``
put raw escape sequences into the human output of ``authctl audit``: terminal title and
colour changes, a cleared screen, a carriage return that overwrites the line, a line break
that forges a whole audit line, or bidi controls that reorder what the operator reads.
The human output shows every such character escaped; ``--json`` was always escaped.
"""

from __future__ import annotations

import json
import unicodedata

import aiohttp
import pytest
from click.testing import CliRunner

from localai_authd.cli import cli
from localai_authd.cli.observe import _line
from tests.conftest import GW

NASTY = [
    "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[H",
    "\r2026-01-01T00:00:00.000Z  200  admin  POST /api/pull  ok",
    "\n2026-01-01T00:00:00.000Z  control  revoke laptop  ok  uid=0",
    "\u202ellama3\u202c",
    "\x9b31m",  # an 8-bit CSI
    "\x00\x08\x7f",
    "\u2028\u2029\x85",
]


def _terminal_safe(text: str) -> bool:
    return all(c == "\n" or (unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp")) for c in text)


@pytest.mark.parametrize("nasty", NASTY)
@pytest.mark.parametrize(
    "field", ["model", "path", "method", "key", "key_id", "reason", "client", "name", "action"]
)
@pytest.mark.parametrize("kind", ["request", "control"])
def test_every_printed_field_is_escaped(nasty: str, field: str, kind: str) -> None:
    rec = {"time": "2026-01-01T00:00:00.000Z", "kind": kind, "status": 403, "method": "POST"}
    rec.update({"path": "/api/generate", "reason": "model_not_allowed", "peer_uid": 0})
    rec[field] = "x" + nasty + "y"
    line = _line(rec)
    assert "\n" not in line and _terminal_safe(line), repr(line)


async def test_a_key_holder_cannot_write_to_the_operators_terminal(gw: GW) -> None:
    key = (await gw.store.create("laptop", models=("llama3*",))).key
    async with aiohttp.ClientSession() as s:
        for nasty in NASTY:
            body = {"model": "llama3" + nasty, "prompt": "hi"}
            headers = {"Authorization": f"Bearer {key}", "User-Agent": "ua"}
            async with s.post(gw.url + "/api/generate", json=body, headers=headers) as r:
                assert r.status in (400, 403)
    result = CliRunner().invoke(cli, ["audit", "--file", str(gw.audit_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(NASTY)  # no forged lines
    assert _terminal_safe(result.output), repr(result.output)
    as_json = CliRunner().invoke(cli, ["--json", "audit", "--file", str(gw.audit_path)])
    models = [json.loads(x).get("model") for x in as_json.output.splitlines()]
    assert models == ["llama3" + n for n in NASTY]  # --json keeps them exactly, escaped
