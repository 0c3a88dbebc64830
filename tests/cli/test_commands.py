"""authctl's commands through click's CliRunner against a real server on a real socket."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from localai_authd import config
from localai_authd.cli import cli
from localai_authd.control.client import DEFAULT_SOCKET
from localai_authd.errors import (
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)
from tests.cli.runner import SECRET, authctl, failed, ok
from tests.control.conftest import ThreadedControl


def test_create_prints_the_secret_once(threaded: ThreadedControl) -> None:
    out = ok(authctl(threaded, "create", "laptop", "--models", "llama3*", "--expires", "30d"))
    key = next(line for line in out.splitlines() if line.startswith("sk_local_"))
    assert "will not be shown again" in out
    assert "models: llama3*" in out
    ident = threaded.c.store.verify(key)
    assert ident is not None and ident.models == ("llama3*",)
    assert key not in ok(authctl(threaded, "show", "laptop"))
    assert key not in ok(authctl(threaded, "list"))


def test_json_output_carries_the_key(threaded: ThreadedControl) -> None:
    doc = json.loads(ok(authctl(threaded, "--json", "create", "ci", "--scope", "admin")))
    assert doc["scopes"] == ["admin"] and threaded.c.store.verify(doc["key"]) is not None
    shown = json.loads(ok(authctl(threaded, "--json", "show", "ci")))
    assert "key" not in shown and shown["kid"] == doc["kid"]
    listed = json.loads(ok(authctl(threaded, "--json", "list")))
    assert [k["name"] for k in listed["keys"]] == ["ci"]


def test_list_is_a_table(threaded: ThreadedControl) -> None:
    assert "no keys yet" in ok(authctl(threaded, "list"))
    ok(authctl(threaded, "create", "b-key"))
    ok(authctl(threaded, "create", "a-key", "--scope", "inference", "--scope", "admin"))
    lines = ok(authctl(threaded, "list")).splitlines()
    assert lines[0].split() == ["NAME", "KID", "STATE", "SCOPES", "MODELS", "CREATED", "EXPIRES"]
    assert [line.split()[0] for line in lines[1:]] == ["a-key", "b-key"]
    assert "inference, admin" in lines[1] and lines[1].endswith("never")


def test_rotate_default_grace_kills_the_old_secret(threaded: ThreadedControl) -> None:
    old = json.loads(ok(authctl(threaded, "--json", "create", "laptop")))["key"]
    out = ok(authctl(threaded, "rotate", "laptop"))
    new = next(line for line in out.splitlines() if line.startswith("sk_local_"))
    assert "old secret is dead" in out and "will not be shown again" in out
    assert threaded.c.store.verify(old) is None and threaded.c.store.verify(new) is not None


def test_rotate_with_grace_keeps_both(threaded: ThreadedControl) -> None:
    old = json.loads(ok(authctl(threaded, "--json", "create", "laptop")))["key"]
    doc = json.loads(ok(authctl(threaded, "--json", "rotate", "laptop", "--grace", "1h")))
    assert threaded.c.store.verify(old) is not None
    assert threaded.c.store.verify(doc["key"]) is not None
    assert doc["previous_secret_valid_until"] is not None


def test_revoke(threaded: ThreadedControl) -> None:
    key = json.loads(ok(authctl(threaded, "--json", "create", "laptop")))["key"]
    out = ok(authctl(threaded, "revoke", "laptop", "--kill-streams"))
    assert out.startswith("Revoked key 'laptop'") and "0 stream(s) ended" in out
    assert threaded.c.store.verify(key) is None
    assert "revoked" in ok(authctl(threaded, "show", "laptop"))


def test_import_reads_stdin_and_never_prints_the_secret(threaded: ThreadedControl) -> None:
    out = ok(authctl(threaded, "import", "legacy", "--scope", "admin", input=SECRET + "\n"))
    assert SECRET not in out and "Imported key 'legacy'" in out
    ident = threaded.c.store.verify(SECRET)
    assert ident is not None and ident.scopes == ("admin",)
    r = authctl(threaded, "--json", "import", "legacy2", input="another-legacy-secret-xyz")
    assert "another-legacy-secret-xyz" not in ok(r)


def test_import_has_no_secret_option() -> None:
    r = CliRunner().invoke(cli, ["import", "x", "--secret", SECRET])
    assert failed(r, EXIT_USAGE) == (
        "authctl: No such option '--secret'. Did you mean '--scope'? (see 'authctl import --help')"
    )


def test_status_and_reload(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "create", "laptop"))
    out = ok(authctl(threaded, "status"))
    assert "keys.active:" in out and "upstreams[0].reachable: true" in out
    assert json.loads(ok(authctl(threaded, "--json", "status")))["keys"]["total"] == 1
    assert ok(authctl(threaded, "reload")).strip() == "Reloaded."
    assert threaded.c.levers.reloads == 1


def test_reload_refused_is_a_failure(threaded: ThreadedControl) -> None:
    threaded.c.levers.reload_result = {
        "reloaded": False,
        "problems": ["[server] listen: bad address", "[upstream] url: missing"],
    }
    line = failed(authctl(threaded, "reload"), EXIT_CONFIG)
    assert line == (
        "authctl: reload refused: [server] listen: bad address; [upstream] url: missing"
    )


FAILURES = [
    (["show", "ghost"], EXIT_NOT_FOUND, "authctl: no key named 'ghost'"),
    (["rotate", "ghost"], EXIT_NOT_FOUND, "authctl: no key named 'ghost'"),
    (["create", "../../x"], EXIT_USAGE, "authctl: invalid key name '../../x'"),
    (["show", "../../x"], EXIT_USAGE, "authctl: invalid key name '../../x'"),
    (["create", "x", "--scope", "root"], EXIT_USAGE, "authctl: Invalid value for '--scope'"),
    (["create", "x", "--expires", "soon"], EXIT_USAGE, "authctl: Invalid value for '--exp"),
    (["rotate", "x", "--grace", "-1"], EXIT_USAGE, "authctl: Invalid value for '--grace'"),
    (["create"], EXIT_USAGE, "authctl: Missing argument 'NAME'"),
    (["frobnicate"], EXIT_USAGE, "authctl: No such command 'frobnicate'"),
    (["import", "x"], EXIT_USAGE, "authctl: no secret given on stdin"),
]


@pytest.mark.parametrize(("args", "code", "expected"), FAILURES)
def test_failures_are_one_line(
    threaded: ThreadedControl, args: list[str], code: int, expected: str
) -> None:
    before = [i.to_json() for i in threaded.c.store.all()]
    assert failed(authctl(threaded, *args, input=""), code).startswith(expected)
    assert [i.to_json() for i in threaded.c.store.all()] == before


def test_conflict(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "create", "laptop"))
    line = failed(authctl(threaded, "create", "laptop"), EXIT_CONFLICT)
    assert line == "authctl: a key named 'laptop' exists; rotate it, or revoke it first"


def test_daemon_not_running(sock_dir: Path) -> None:
    path = sock_dir / "absent.sock"
    r = CliRunner().invoke(cli, ["--socket", str(path), "list"])
    assert failed(r, EXIT_UNAVAILABLE) == (
        f"authctl: cannot reach localai-authd at {path}: no such socket (is the daemon running?)"
    )


def test_stale_socket_file(sock_dir: Path) -> None:
    path = sock_dir / "stale.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.close()
    r = CliRunner().invoke(cli, ["--socket", str(path), "status"])
    assert "nothing is listening (is the daemon running?)" in failed(r, EXIT_UNAVAILABLE)


def test_socket_from_the_environment(threaded: ThreadedControl) -> None:
    env = {"LOCALAI_AUTHD_SOCKET": str(threaded.c.sock)}
    r = CliRunner().invoke(cli, ["create", "from-env"], env=env)
    assert r.exit_code == 0, r.stderr
    assert [i.name for i in threaded.c.store.all()] == ["from-env"]


def test_default_socket_is_the_configs() -> None:
    assert DEFAULT_SOCKET == config.DEFAULT_SOCKET


# ---- help -------------------------------------------------------------------------------

COMMANDS = ["create", "list", "show", "rotate", "revoke", "import", "status", "reload"]


def test_top_level_help_documents_commands_exit_codes_and_socket() -> None:
    out = ok(CliRunner().invoke(cli, ["--help"]))
    for name in COMMANDS:
        assert f"\n  {name} " in out, name
    codes = [line.split()[0] for line in out.split("Exit codes:")[1].splitlines()[1:10]]
    assert codes == ["0", "1", "2", "3", "4", "69", "70", "77", "78"]
    assert "LOCALAI_AUTHD_SOCKET" in out and "/run/localai-authd/control.sock" in out
    assert "_AUTHCTL_COMPLETE=bash_source" in out
    assert ok(CliRunner().invoke(cli, ["-h"])) == out


@pytest.mark.parametrize(
    ("command", "must_mention"),
    [
        ("create", ["NAME", "--scope [inference|admin]", "--models GLOB", "--expires DURATION"]),
        ("list", ["List every key"]),
        ("show", ["NAME"]),
        ("rotate", ["--grace DURATION", "default: 0"]),
        ("revoke", ["--kill-streams"]),
        ("import", ["stdin", "--scope", "--models", "--expires"]),
        ("status", ["version"]),
        ("reload", ["SIGHUP"]),
    ],
)
def test_every_command_has_help(command: str, must_mention: list[str]) -> None:
    out = ok(CliRunner().invoke(cli, [command, "--help"]))
    assert out.startswith(f"Usage: authctl {command} ")
    for text in must_mention:
        assert text in out, (command, text)


def test_version() -> None:
    assert "authctl, version 0.1.0" in ok(CliRunner().invoke(cli, ["--version"]))


@pytest.mark.parametrize(("args", "code", "expected"), FAILURES)
@pytest.mark.parametrize("where", ["before", "after"])
def test_with_json_every_failure_is_a_json_document(
    threaded: ThreadedControl, args: list[str], code: int, expected: str, where: str
) -> None:
    args = ["--json", *args] if where == "before" else [*args, "--json"]
    r = authctl(threaded, *args, input="")
    assert (r.exit_code, r.stderr) == (code, "")
    error = json.loads(r.stdout)["error"]
    assert error["message"].startswith(expected.removeprefix("authctl: "))
    assert isinstance(error["code"], str) and error["code"]
