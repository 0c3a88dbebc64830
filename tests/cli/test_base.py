"""The one request helper and the failures: --json before or after any command, failures as
JSON documents, and an unknown name answered with the nearest known one."""

from __future__ import annotations

import json

import click
import pytest

from localai_authd.cli import cli
from localai_authd.errors import EXIT_CONFIG, EXIT_NOT_FOUND, EXIT_USAGE
from tests.cli.runner import authctl, failed, ok
from tests.control.conftest import ThreadedControl

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
    "usage": ([], ["usage", "--since", "1d"]),
    # --json prints JSON Lines; one record (the same one each time) is one JSON object
    "audit": ([], ["audit", "--key", "base", "--status", "2xx", "--limit", "1"]),
    "doctor": ([], ["doctor"]),
    "set": ([], ["set", "base", "--rpm", "{n}"]),
    "suspend": ([["create", "k{n}"]], ["suspend", "k{n}"]),
    "resume": ([["create", "k{n}"], ["suspend", "k{n}"]], ["resume", "k{n}"]),
    "delete": ([["create", "k{n}"], ["revoke", "k{n}"]], ["delete", "k{n}"]),
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
            "error": {"code": "not_found", "message": "no key named 'ghost'", "did_you_mean": []}
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


# ---- an unknown name: the nearest known one ----------------------------------------------


def test_an_unknown_key_suggests_the_nearest(threaded: ThreadedControl) -> None:
    for name in ("laptop", "lab-box", "server"):
        ok(authctl(threaded, "create", name))
    for command in (["show"], ["rotate"], ["revoke"], ["token"], ["bind-cert", "-", "cn"]):
        args = [command[0], "lapotp", *command[2:]]
        line = failed(authctl(threaded, *args), EXIT_NOT_FOUND)
        assert line == "authctl: no key named 'lapotp'; did you mean 'laptop'?", command
    line = failed(authctl(threaded, "show", "lab"), EXIT_NOT_FOUND)
    assert line == "authctl: no key named 'lab'; did you mean 'lab-box'?"
    line = failed(authctl(threaded, "show", "zzzz"), EXIT_NOT_FOUND)
    assert line == "authctl: no key named 'zzzz'"  # nothing near: no guess
    r = authctl(threaded, "show", "servr", "--json")
    assert (r.exit_code, r.stderr) == (EXIT_NOT_FOUND, "")
    assert json.loads(r.stdout)["error"] == {
        "code": "not_found",
        "message": "no key named 'servr'; did you mean 'server'?",
        "did_you_mean": ["server"],
    }
    assert [i.name for i in threaded.c.store.all()] == ["lab-box", "laptop", "server"]


def test_an_unknown_upstream_key_suggests_the_nearest(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "upstream-key", "set", "vllm-gpu0", input="upstream-secret\n"))
    line = failed(authctl(threaded, "upstream-key", "delete", "vllm-gpu1"), EXIT_NOT_FOUND)
    assert line == "authctl: no upstream key named 'vllm-gpu1'; did you mean 'vllm-gpu0'?"
