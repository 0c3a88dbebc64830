"""kill -9 at any moment of any write: what was reported is there, nothing is corrupt.

A child process runs the key store's every change (create, import, rotate with and
without grace, set, suspend, resume, revoke, delete, bind-cert, rotate of the signing
secret, upstream-key set and delete) in a random order and reports each one's result
after it returned; the parent SIGKILLs it at a random moment, reopens the keyring and
checks that the store loads, equals the last reported state except for what the one
unreported change touched, and that every reported live secret and token still verifies.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault

_CHILD = r"""
import asyncio, json, random, sys
from localai_authd.keys.store import KeyStore
from localai_authd.keys.vault import open_vault
from localai_authd.errors import AuthdError

def snap(s, secrets, tokens):
    return {
        "keys": {i.name: i.to_json() for i in s.all()},
        "signing": sorted(x["id"] for x in s.signing_status()),
        "upstream": {n: s.upstream_key(n) for n in s.upstream_key_names()},
        "secrets": secrets, "tokens": tokens,
    }

async def main():
    s = KeyStore(open_vault("file", sys.argv[1]))
    await s.load()
    rng = random.Random(int(sys.argv[2]))
    secrets = json.loads(sys.argv[3])
    tokens = {}
    names = ["a", "b", "c", "d"]
    print(json.dumps({"done": snap(s, secrets, tokens)}), flush=True)
    for step in range(10_000):
        n = rng.choice(names)
        op = rng.choice(["create", "import", "rotate", "rotate-grace", "set", "suspend",
                         "resume", "revoke", "delete", "bind", "signing", "signing-grace",
                         "upstream", "upstream-del", "token"])
        print(json.dumps({"pending": [op, n]}), flush=True)
        if op in ("create", "import", "rotate", "rotate-grace", "revoke"):
            tokens.pop(n, None)  # what a token dies with (a second graced rotation too)
        try:
            if op == "create":
                secrets[n] = (await s.create(n, models=("llama3*",))).key
            elif op == "import":
                sec = "legacy-%d-%s" % (step, "x" * 20)
                await s.import_secret(n, sec); secrets[n] = sec
            elif op in ("rotate", "rotate-grace"):
                secrets[n] = (await s.rotate(n, 3600.0 if op == "rotate-grace" else 0.0)).key
            elif op == "set":
                await s.edit(n, limits={"requests_per_minute": step})
            elif op == "suspend":
                await s.suspend(n)
            elif op == "resume":
                await s.resume(n)
            elif op == "revoke":
                await s.revoke(n)
            elif op == "delete":
                await s.delete(n); secrets.pop(n, None); tokens.pop(n, None)
            elif op == "bind":
                await s.bind_cert(n, "cn-%s-%d" % (n, step))
            elif op in ("signing", "signing-grace"):
                await s.rotate_signing_secret(3600.0 if op == "signing-grace" else 0.0)
                if op == "signing":
                    tokens.clear()
            elif op == "upstream":
                await s.set_upstream_key(n, "up-%d" % step)
            elif op == "upstream-del":
                await s.delete_upstream_key(n)
            elif op == "token":
                tokens[n] = s.issue_token(s.get(n), 3600, 86400)[0]
        except AuthdError:
            pass
        print(json.dumps({"done": snap(s, secrets, tokens)}), flush=True)

asyncio.run(main())
"""


def _without(snapshot: dict[str, Any], op: str, name: str) -> dict[str, Any]:
    """The parts of a snapshot the pending change cannot have touched."""
    keys = dict(snapshot["keys"])
    upstream = dict(snapshot["upstream"])
    signing = snapshot["signing"]
    if op in ("signing", "signing-grace"):
        signing = None
    elif op in ("upstream", "upstream-del"):
        upstream.pop(name, None)
    elif op != "token":
        keys.pop(name, None)
    return {"keys": keys, "upstream": upstream, "signing": signing}


async def _loaded(state: Path) -> tuple[KeyStore, dict[str, Any]]:
    s = KeyStore(open_vault("file", state))
    await s.load()
    snap = {
        "keys": {i.name: i.to_json() for i in s.all()},
        "signing": sorted(x["id"] for x in s.signing_status()),
        "upstream": {n: s.upstream_key(n) for n in s.upstream_key_names()},
    }
    return s, snap


@pytest.mark.parametrize("seed", [1, 2])
async def test_kill_9_during_any_change(tmp_path: Path, seed: int) -> None:
    state = tmp_path / "state"
    rng = random.Random(seed)
    secrets: dict[str, str] = {}
    for run in range(8):  # bounded: eight crashes per seed
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(state), str(seed * 100 + run), json.dumps(secrets)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        try:
            first = proc.stdout.readline()
            assert first.startswith('{"done"'), first
            threading.Event().wait(rng.uniform(0.05, 0.6))
        finally:
            proc.send_signal(signal.SIGKILL)
            lines = [first, *proc.stdout.read().splitlines()]
            proc.wait()
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL
        events = [json.loads(x) for x in lines if x.strip().endswith("}")]
        done = [e["done"] for e in events if "done" in e]
        last = done[-1]
        pending = events[-1].get("pending") if "pending" in events[-1] else None
        store, loaded = await _loaded(state)
        try:
            ctx = f"seed={seed} run={run} pending={pending}"
            if pending is None:
                assert loaded == {k: last[k] for k in ("keys", "signing", "upstream")}, ctx
            else:
                assert _without(loaded, *pending) == _without(last, *pending), ctx
            for name, secret in last["secrets"].items():
                if pending is not None and pending[1] == name:
                    continue
                ident = last["keys"].get(name)
                if secret and ident and ident["state"] == "active" and not ident["suspended"]:
                    assert store.check(secret).reason == "ok", (ctx, name)
            for name, token in last["tokens"].items():
                if pending is not None and (pending[1] == name or "signing" in pending[0]):
                    continue
                ident = last["keys"].get(name)
                if ident and ident["state"] == "active" and not ident["suspended"]:
                    assert store.check_token(token, 30, 86400).identity is not None, (ctx, name)
            # Next run starts from what survived, and knows the secrets that did.
            secrets = {
                n: sec
                for n, sec in last["secrets"].items()
                if sec and n in loaded["keys"] and (pending is None or pending[1] != n)
            }
        finally:
            await store.close()
