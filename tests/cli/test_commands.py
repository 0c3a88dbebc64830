"""authctl through click's CliRunner against a real server on a real socket (in a thread)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

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
from tests.control.conftest import ThreadedControl

SECRET = "legacy-static-key-0123456789abcdef"


def authctl(t: ThreadedControl, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--socket", str(t.c.sock), *args], input=input)


def ok(r: Result) -> str:
    assert r.exit_code == 0, (r.exit_code, r.stdout, r.stderr)
    assert r.stderr == ""
    return r.stdout


def failed(r: Result, code: int) -> str:
    """The one line on stderr, checked for shape; nothing on stdout."""
    assert r.exit_code == code, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("authctl: "), r.stderr
    return lines[0]


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


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
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
    ],
)
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


# ---- --json before or after the command ---------------------------------------------------

# Every command, as (setup commands, the command); {n} makes each run's names its own.
JSON_CASES: dict[str, tuple[list[list[str]], list[str]]] = {
    "create": ([], ["create", "k{n}"]),
    "list": ([], ["list"]),
    "show": ([], ["show", "base"]),
    "rotate": ([], ["rotate", "base", "--grace", "1h"]),
    "rotate --signing-secret": ([], ["rotate", "--signing-secret"]),
    "token": ([], ["token", "base", "--ttl", "5m"]),
    "bind-cert": ([], ["bind-cert", "base", "subject-{n}"]),
    "unbind-cert": ([["bind-cert", "base", "subject-{n}"]], ["unbind-cert", "base", "subject-{n}"]),
    "revoke": ([["create", "k{n}"]], ["revoke", "k{n}"]),
    "import": ([], ["import", "k{n}"]),
    "status": ([], ["status"]),
    "reload": ([], ["reload"]),
    "upstream-key set": ([], ["upstream-key", "set", "u{n}"]),
    "upstream-key delete": ([["upstream-key", "set", "u{n}"]], ["upstream-key", "delete", "u{n}"]),
    "upstream-key list": ([], ["upstream-key", "list"]),
}
STDIN = "a-secret-read-from-stdin-{n}\n"


def test_json_cases_cover_every_command() -> None:
    def leaves(group: click.Group, prefix: str = "") -> set[str]:
        names = set()
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                names |= leaves(command, f"{prefix}{name} ")
            else:
                names.add(prefix + name)
        return names

    assert leaves(cli) == {case.split(" --")[0] for case in JSON_CASES}


@pytest.mark.parametrize("case", list(JSON_CASES))
def test_json_before_and_after_the_command_are_the_same(
    threaded: ThreadedControl, case: str
) -> None:
    setup, command = JSON_CASES[case]
    ok(authctl(threaded, "create", "base"))
    runs: dict[str, str] = {}
    for n, where in enumerate(["before", "after", "none"]):

        def fill(args: list[str], n: int = n) -> list[str]:
            return [a.format(n=n) for a in args]

        for args in setup:
            ok(authctl(threaded, *fill(args), input=STDIN.format(n=n)))
        args = fill(command)
        args = {"before": ["--json", *args], "after": [*args, "--json"], "none": args}[where]
        runs[where] = ok(authctl(threaded, *args, input=STDIN.format(n=n)))
    before, after = json.loads(runs["before"]), json.loads(runs["after"])
    assert isinstance(before, dict) and sorted(before) == sorted(after)
    if case in ("list", "show", "status", "reload", "upstream-key list"):
        assert before == after  # nothing changed in between: the very same answer
    with pytest.raises(ValueError):
        json.loads(runs["none"])


def test_json_after_a_subgroup(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "upstream-key", "set", "vllm", input="upstream-secret\n"))
    doc = json.loads(ok(authctl(threaded, "upstream-key", "--json", "list")))
    assert doc == {"upstream_keys": ["vllm"]}


def test_json_failures_are_json_on_stdout(threaded: ThreadedControl) -> None:
    for args in (["--json", "show", "ghost"], ["show", "ghost", "--json"]):
        r = authctl(threaded, *args)
        assert (r.exit_code, r.stderr) == (EXIT_NOT_FOUND, "")
        assert json.loads(r.stdout) == {
            "error": {"code": "not_found", "message": "no key named 'ghost'"}
        }
    r = authctl(threaded, "create", "--json")  # a usage error, before any command ran
    assert (r.exit_code, r.stderr) == (EXIT_USAGE, "")
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "usage" and err["message"].startswith("Missing argument 'NAME'")


def test_reload_refused_with_json_is_one_error_document(threaded: ThreadedControl) -> None:
    threaded.c.levers.reload_result = {"reloaded": False, "problems": ["[server] listen: bad"]}
    r = authctl(threaded, "reload", "--json")
    assert (r.exit_code, r.stderr) == (EXIT_CONFIG, "")
    assert json.loads(r.stdout) == {
        "error": {
            "code": "config_invalid",
            "message": "reload refused: [server] listen: bad",
            "problems": ["[server] listen: bad"],
        }
    }
