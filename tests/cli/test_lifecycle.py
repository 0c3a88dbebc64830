"""authctl set, suspend, resume, delete, and the limit options of create, against the real
control server on a real socket."""

from __future__ import annotations

import json
import math

from click.testing import CliRunner

from localai_authd.cli import cli
from localai_authd.errors import EXIT_CONFLICT, EXIT_NOT_FOUND, EXIT_USAGE
from localai_authd.keys.model import Limits
from localai_authd.keys.table import TABLE_ENTRY
from tests.cli.runner import authctl, failed, ok
from tests.control.conftest import ThreadedControl


def test_create_takes_the_limit_options(threaded: ThreadedControl) -> None:
    args = ["--rpm", "60", "--tpm", "1000", "--tpd", "50000", "--streams", "2"]
    args += ["--max-keep-alive", "5m", "--max-num-ctx", "8192"]
    ok(authctl(threaded, "create", "laptop", *args))
    assert threaded.c.store.get("laptop").limits == Limits(60, 1000, 50000, 2, 300.0, 8192)
    shown = ok(authctl(threaded, "show", "laptop"))
    assert "requests_per_minute=60" in shown and "max_keep_alive=300.0" in shown


def test_set_changes_without_rotating(threaded: ThreadedControl) -> None:
    out = ok(authctl(threaded, "create", "laptop", "--models", "llama3*"))
    key = next(line for line in out.splitlines() if line.startswith("sk_local_"))
    out = ok(
        authctl(
            threaded, "set", "laptop", "--models", "qwen*", "--scope", "admin",
            "--scope", "inference", "--expires", "2h", "--rpm", "30",
        )
    )  # fmt: skip
    assert "secret is unchanged" in out and "requests_per_minute=30" in out
    ident = threaded.c.store.get("laptop")
    assert ident.models == ("qwen*",) and ident.scopes == ("admin", "inference")
    assert ident.expires is not None and ident.limits.requests_per_minute == 30
    assert threaded.c.store.verify(key) is not None
    ok(authctl(threaded, "set", "laptop", "--any-model", "--expires", "never", "--rpm", "default"))
    ident = threaded.c.store.get("laptop")
    assert ident.models == () and ident.expires is None and ident.limits == Limits()


def test_set_refuses_nonsense_before_asking(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "create", "laptop"))
    for args in (
        ["--rpm", "-1"],
        ["--rpm", "1.5"],
        ["--rpm", "nan"],
        ["--max-keep-alive", "-1"],
        ["--max-keep-alive", "inf"],
        ["--expires", "NaN"],
        ["--models", "llama["],
        [],
        ["--models", "x", "--any-model"],
    ):
        failed(authctl(threaded, "set", "laptop", *args), EXIT_USAGE)
    failed(authctl(threaded, "set", "nobody", "--rpm", "5"), EXIT_NOT_FOUND)


def test_suspend_resume(threaded: ThreadedControl) -> None:
    out = ok(authctl(threaded, "create", "laptop"))
    key = next(line for line in out.splitlines() if line.startswith("sk_local_"))
    assert "Suspended key 'laptop'" in ok(authctl(threaded, "suspend", "laptop", "--kill-streams"))
    assert threaded.c.store.check(key).reason == "suspended"
    assert "suspended" in ok(authctl(threaded, "list"))
    ok(authctl(threaded, "resume", "laptop"))
    assert threaded.c.store.verify(key) is not None


def test_delete_needs_a_revoked_key(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "create", "laptop"))
    line = failed(authctl(threaded, "delete", "laptop"), EXIT_CONFLICT)
    assert "revoke it first" in line
    ok(authctl(threaded, "revoke", "laptop"))
    ok(authctl(threaded, "delete", "laptop"))
    assert "no keys yet" in ok(authctl(threaded, "list"))
    failed(authctl(threaded, "delete", "laptop"), EXIT_NOT_FOUND)


def test_list_and_show_survive_any_stored_value(threaded: ThreadedControl) -> None:
    ok(authctl(threaded, "create", "laptop"))
    store = threaded.c.store
    doc = json.loads(store._vault.get(TABLE_ENTRY) or "")
    doc["keys"][0].update(expires=math.nan, created=math.inf, rotated_at=1e300)
    doc["keys"][0]["limits"] = {"requests_per_minute": math.nan}
    store._vault.set(TABLE_ENTRY, json.dumps(doc))
    threaded.run(store.load())
    assert "laptop" in ok(authctl(threaded, "list"))
    assert "expired" in ok(authctl(threaded, "show", "laptop"))
    ok(authctl(threaded, "status"))
    ok(authctl(threaded, "--json", "list"))


def test_new_commands_have_help() -> None:
    for command, text in (
        ("set", "--max-keep-alive DURATION"),
        ("suspend", "--kill-streams"),
        ("resume", "NAME"),
        ("delete", "revoked"),
        ("create", "--rpm N"),
    ):
        out = CliRunner().invoke(cli, [command, "--help"]).stdout
        assert text in out, (command, out)
