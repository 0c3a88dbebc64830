"""authctl as a real process: the installed console script, its imports, completion, a TTY."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

from localai_authd.errors import EXIT_NOT_FOUND, EXIT_USAGE
from tests.control.conftest import Control

BIN = Path(sys.executable).parent
AUTHCTL = str(BIN / "authctl")
HEAVY = ("aiohttp", "keyring", "cryptography", "multidict", "yarl")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCALAI_AUTHD_", "_AUTHCTL"))}
    env.update(extra)
    return env


async def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or clean_env(),
    )
    out, err = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_console_script_end_to_end(control: Control) -> None:
    s = str(control.sock)
    rc, out, err = await run(AUTHCTL, "--socket", s, "--json", "create", "laptop")
    assert (rc, err) == (0, "")
    key = json.loads(out)["key"]
    assert control.store.verify(key) is not None
    rc, out, err = await run(AUTHCTL, "--socket", s, "list", "--json")
    assert (rc, err) == (0, "") and [k["name"] for k in json.loads(out)["keys"]] == ["laptop"]

    rc, out, _ = await run(AUTHCTL, "--socket", s, "rotate", "laptop", "--grace", "1h")
    assert rc == 0 and "will not be shown again" in out
    new = next(line for line in out.splitlines() if line.startswith("sk_local_"))
    assert control.store.verify(key) is not None and control.store.verify(new) is not None

    rc, out, _ = await run(
        AUTHCTL, "--socket", s, "import", "legacy", stdin=b"old-static-key-12345678\n"
    )
    assert rc == 0 and "old-static-key" not in out
    assert control.store.verify("old-static-key-12345678") is not None

    rc, out, _ = await run(AUTHCTL, "revoke", "laptop", env=clean_env(LOCALAI_AUTHD_SOCKET=s))
    assert rc == 0 and control.store.verify(new) is None

    rc, out, err = await run(AUTHCTL, "--socket", s, "show", "ghost")
    assert (rc, out, err) == (EXIT_NOT_FOUND, "", "authctl: no key named 'ghost'\n")
    rc, out, err = await run(AUTHCTL, "--socket", s, "show", "ghost", "--json")
    assert (rc, err) == (EXIT_NOT_FOUND, "")
    assert json.loads(out)["error"]["message"] == "no key named 'ghost'"
    assert [r["action"] for r in control.audit()] == [
        "create",
        "list",
        "rotate",
        "import",
        "revoke",
        "show",
        "list",  # an unknown name: authctl looks for the nearest known one
        "show",
        "list",
    ]


def test_authctl_imports_no_aiohttp_or_keyring() -> None:
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import localai_authd.cli"],
        capture_output=True, text=True, check=True, env=clean_env(),
    )  # fmt: skip
    modules = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()]
    assert "localai_authd.cli" in modules
    assert not [m for m in modules if m.split(".")[0] in HEAVY]

    code = "import sys, localai_authd.cli; print('\\n'.join(sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert not [m for m in r.stdout.split() if m.split(".")[0] in HEAVY]


def test_shell_completion_script() -> None:
    r = subprocess.run(
        [AUTHCTL], capture_output=True, text=True, env=clean_env(_AUTHCTL_COMPLETE="bash_source")
    )
    assert r.returncode == 0, r.stderr
    assert "_authctl_completion()" in r.stdout and "complete -o nosort -F" in r.stdout


async def test_completion_of_commands_and_key_names(control: Control) -> None:
    await control.store.create("laptop")
    await control.store.create("lab-box")
    await control.store.create("server")

    def complete(words: str) -> list[str]:
        env = clean_env(
            _AUTHCTL_COMPLETE="bash_complete",
            COMP_WORDS=words,
            COMP_CWORD=str(len(words.split()) - (0 if words.endswith(" ") else 1)),
        )
        r = subprocess.run([AUTHCTL], capture_output=True, text=True, env=env)
        return [line.split(",", 1)[1] for line in r.stdout.splitlines()]

    assert await asyncio.to_thread(complete, "authctl ro") == ["rotate"]
    names = await asyncio.to_thread(complete, f"authctl --socket {control.sock} show la")
    assert sorted(names) == ["lab-box", "laptop"]


async def test_import_from_a_terminal_does_not_echo(control: Control) -> None:
    secret = "typed-at-a-terminal-0123456789"
    master, slave = os.openpty()
    # A session of its own: getpass must not find the test runner's /dev/tty.
    proc = await asyncio.create_subprocess_exec(
        AUTHCTL, "--socket", str(control.sock), "import", "typed",
        stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=clean_env(),
    )  # fmt: skip
    os.close(slave)
    loop = asyncio.get_running_loop()
    seen = b""

    async def read_more() -> bool:
        nonlocal seen
        try:
            chunk = await loop.run_in_executor(None, os.read, master, 4096)
        except OSError:  # EIO: every slave end is closed, the child is gone
            return False
        seen += chunk
        return bool(chunk)

    try:
        async with asyncio.timeout(60):
            while b"Secret to import" not in seen:
                assert await read_more(), seen
            os.write(master, secret.encode() + b"\n")
            while await read_more():
                pass
            assert await proc.wait() == 0, seen
    finally:
        os.close(master)
    assert secret.encode() not in seen
    assert b"Imported key 'typed'" in seen
    ident = control.store.verify(secret)
    assert ident is not None and ident.name == "typed"


async def test_bad_input_through_the_console_script(control: Control) -> None:
    s = str(control.sock)
    rc, out, err = await run(AUTHCTL, "--socket", "", "list")
    assert (rc, out) == (EXIT_USAGE, "") and "the socket path is empty" in err
    assert len(err.splitlines()) == 1 and err.startswith("authctl: ")

    rc, out, err = await run(AUTHCTL, "--socket", s, "import", "legacy", stdin=b"one\ntwo\n")
    assert (rc, out) == (EXIT_USAGE, "")
    assert err == (
        "authctl: the secret on stdin has a line break inside it, after character 3 "
        "(2 lines); a secret is one line\n"
    )

    await control.store.create("laptop")
    rc, out, err = await run(AUTHCTL, "--socket", s, "revoke", "laptp", "--json")
    assert (rc, err) == (EXIT_NOT_FOUND, "")
    assert json.loads(out) == {
        "error": {
            "code": "not_found",
            "message": "no key named 'laptp'; did you mean 'laptop'?",
            "did_you_mean": ["laptop"],
        }
    }
