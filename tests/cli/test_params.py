"""authctl's parameter types, as the command line meets them."""

from __future__ import annotations

import json

from click.testing import CliRunner

from localai_authd.cli import cli
from localai_authd.errors import EXIT_USAGE
from tests.cli.runner import failed


def test_an_empty_socket_path_is_a_usage_error() -> None:
    line = failed(CliRunner().invoke(cli, ["--socket", "", "list"]), EXIT_USAGE)
    assert line.startswith("authctl: Invalid value for '--socket'")
    assert line.endswith("the socket path is empty (see 'authctl --help')")
    r = CliRunner().invoke(cli, ["--socket", "", "list", "--json"])
    assert (r.exit_code, r.stderr) == (EXIT_USAGE, "")
    assert json.loads(r.stdout)["error"]["code"] == "usage"


def test_a_socket_path_too_long_for_sun_path_is_a_usage_error() -> None:
    path = "/tmp/" + "s" * 103  # 108 bytes: one more than sun_path holds
    line = failed(CliRunner().invoke(cli, ["--socket", path, "list"]), EXIT_USAGE)
    assert "a Unix socket path holds at most 107 bytes" in line
