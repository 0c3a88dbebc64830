"""authctl's operator views: ``audit`` (the audit trail) and ``doctor`` (what is wrong).

``auditlog`` and ``doctor`` are imported inside the commands: the rest of authctl never
pays for them (gzip, hashlib, tomllib, ctypes).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from ..errors import EXIT_FAILURE, AuthdError, UsageError
from . import output as out
from .base import Failure, State
from .group import cli, pass_state
from .params import Duration

FOLLOW_WAIT = 5.0  # seconds one long poll may wait on the daemon
FILE_POLL = 0.5  # seconds between looks at a file followed directly


def _line(rec: dict[str, Any]) -> str:
    t = str(rec.get("time", "-"))
    if rec.get("kind") == "control":
        who = f"uid={rec.get('peer_uid')}"
        name = rec.get("name") or ""
        line = f"{t}  control  {rec.get('action')} {name}  {rec.get('reason')}  {who}"
        return out.printable(line.rstrip())
    key = rec.get("key") or (f"kid:{rec['key_id']}" if rec.get("key_id") else "-")
    status = rec.get("status")
    dur = rec.get("duration_ms")
    took = f"{dur:g}ms" if isinstance(dur, int | float) else "-"
    model = f" model={rec['model']}" if rec.get("model") else ""
    return out.printable(
        f"{t}  {status}  {key}  {rec.get('method')} {rec.get('path') or '-'}{model}  "
        f"{rec.get('reason')}  {took}  {rec.get('client') or '-'}"
    )


def _emit(state: State, records: Iterable[dict[str, Any]]) -> None:
    for rec in records:
        # --json: JSON Lines, one record per line, as the file itself is written.
        click.echo(json.dumps(rec, sort_keys=True) if state.as_json else _line(rec))


@cli.command()
@click.option("--key", metavar="NAME", help="only this key (its name or key id)")
@click.option(
    "--since", type=Duration(), metavar="DURATION", help="only the last DURATION, e.g. 1h"
)
@click.option("--status", metavar="STATUS", help="only these statuses: 4xx, 401, or 401,5xx")
@click.option("--follow", "-f", is_flag=True, help="keep printing records as they are written")
@click.option(
    "--limit",
    type=click.IntRange(0, 10000),
    default=1000,
    show_default=True,
    help="at most this many (the newest) records before following",
)
@click.option(
    "--file",
    "file_",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help="read this audit file and its rotated ones directly, without the daemon",
)
@pass_state
def audit(
    state: State,
    key: str | None,
    since: str | None,
    status: str | None,
    follow: bool,
    limit: int,
    file_: Path | None,
) -> None:
    """Show the audit trail: one line per request and per control action, oldest first.

    Rotated files (audit.jsonl.1, audit.jsonl.2.gz, ...) are read too. Through the control
    socket by default; --file reads directly where you may read the file. With --json,
    one JSON record per line.
    """
    from .. import auditlog

    try:
        flt = auditlog.Filter(
            key=key,
            since=None if since is None else time.time() - _seconds(since),
            status=auditlog.parse_status(status),
        )
    except ValueError as e:
        raise UsageError(f"--status: {e}") from e
    try:
        if file_ is not None:
            _emit(state, auditlog.read(file_, flt, limit))
            if follow:
                _follow_file(state, file_, auditlog.end_cursor(file_), flt)
            return
        body = {"key": key, "since": since, "status": status, "limit": limit}
        sent = {k: v for k, v in body.items() if v is not None}
        doc = state.client.request("POST", "/v1/audit", sent)
        _emit(state, doc.get("records", []))
        if follow:
            path = Path(str(doc.get("file")))
            cursor = auditlog.Cursor.from_json(doc.get("cursor"))
            if os.access(path, os.R_OK):  # no need to poll the daemon (nor audit each poll)
                _follow_file(state, path, cursor, flt)
            else:
                _follow_socket(state, body, cursor.to_json())
    except KeyboardInterrupt:
        return


def _seconds(text: str) -> float:
    from ..durations import parse_duration

    return parse_duration(text)


def _follow_file(state: State, path: Path, cursor: Any, flt: Any) -> None:
    from .. import auditlog

    while True:
        records, cursor = auditlog.read_new(path, cursor, flt)
        _emit(state, records)
        if not records:
            time.sleep(FILE_POLL)


def _follow_socket(state: State, body: dict[str, Any], cursor: dict[str, Any]) -> None:
    query = {k: v for k, v in body.items() if v is not None and k != "limit"}
    query.pop("since", None)  # everything from here on is newer anyway
    while True:
        doc = state.client.request(
            "POST", "/v1/audit", {**query, "cursor": cursor, "wait": FOLLOW_WAIT}
        )
        _emit(state, doc.get("records", []))
        cursor = doc.get("cursor", cursor)


# ---- doctor ----------------------------------------------------------------------------------

DEFAULT_CONFIG = Path("/etc/localai-authd/config.toml")


@cli.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="PATH",
    help=f"the daemon's config [default: {DEFAULT_CONFIG} if it exists, else built-in]",
)
@click.pass_context
def doctor(ctx: click.Context, config_path: Path | None) -> None:
    """Check what usually goes wrong, and say how to fix it.

    The keyring backend, each listener's exposure, whether the upstream listens beyond
    loopback (which bypasses the gateway), modes and owners of the config, state directory
    and socket, the systemd credential, the clock. Exits 1 if any check fails.
    """
    from .. import config, doctor
    from ..errors import ConfigError

    state = ctx.find_object(State)
    assert state is not None
    if config_path is None and DEFAULT_CONFIG.exists():
        config_path = DEFAULT_CONFIG
    checks: list[doctor.Check] = []
    try:
        cfg = config.load(config_path)
    except ConfigError as e:
        checks.append(doctor.Check("config", doctor.FAIL, "; ".join(e.problems), f"fix {e.source}"))
        cfg = config.Config()
    socket_path = Path(state.client.path)
    status: dict[str, Any] | None = None
    problem = ""
    try:
        status = state.client.request("GET", "/v1/status")
    except AuthdError as e:
        problem = e.message
    checks += doctor.run(cfg, config_path, socket_path, status, problem)
    verdict = doctor.worst(checks)
    if state.as_json:
        click.echo(out.as_json({"result": verdict, "checks": [c.to_json() for c in checks]}))
    else:
        rows = [[c.status.upper(), c.name, c.message + (f" -> {c.fix}" if c.fix else "")]
                for c in checks]  # fmt: skip
        click.echo(out.table(["", "CHECK", "FINDING"], rows))
    if verdict == doctor.FAIL:
        if state.as_json:
            ctx.exit(EXIT_FAILURE)  # the document above says why; no second one
        failed = sum(c.status == doctor.FAIL for c in checks)
        raise Failure(f"{failed} check(s) failed", EXIT_FAILURE, "checks_failed")
