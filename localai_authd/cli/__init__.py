"""authctl: manage localai-authd's keys over its control socket.

Typed by hand and used in scripts, so it starts fast: click, the stdlib control client and
pure modules only -- never aiohttp, keyring or cryptography (a test holds it to that).
Every failure is one line, ``authctl: <reason>``, on stderr (or a JSON error document on
stdout with ``--json``), with an exit code from the table in ``authctl --help``.

The package: ``group`` (the root group and its options), ``base`` (failures, the command
classes, the one request-and-print helper), ``params`` (parameter types, shared options),
``output`` (tables and JSON), and one module per family of commands (``keys``,
``lifecycle``, ``admin``), each registering on the root group when imported here
(``usage``: authctl usage).
"""

from __future__ import annotations

from . import admin, keys, lifecycle, observe, usage  # noqa: F401  (importing registers them)
from .group import cli

__all__ = ["cli", "main"]


def main() -> None:
    cli.main(prog_name="authctl")
