"""authctl's plumbing: one-line failures, the command classes, and the one request helper.

Every command is "ask the daemon, then print its JSON or a human rendering of it";
:meth:`State.call` is that, once. Failures become :class:`Failure`: one line on stderr, or
with ``--json`` an ``{"error": {...}}`` document on stdout, always with a documented exit code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

import click

from ..control.client import ControlClient
from ..errors import EXIT_FAILURE, EXIT_USAGE, AuthdError, NotFound
from . import output

Doc = dict[str, Any]


class Failure(click.ClickException):
    """Printed as exactly one line, ``authctl: <reason>``, with a documented exit code; with
    ``--json``, as ``{"error": {"code", "message", **details}}`` on stdout instead."""

    def __init__(self, message: str, exit_code: int, code: str = "failed", **details: Any) -> None:
        super().__init__(" ".join(message.split()))
        # click declares exit_code a ClassVar, but reads it from the instance it catches.
        vars(self)["exit_code"] = exit_code
        self.code = code
        self.details = details
        self.as_json = False

    def show(self, file: IO[Any] | None = None) -> None:
        if self.as_json:  # scripts read stdout; the exit code stays the same
            click.echo(output.error_json(self.code, self.format_message(), **self.details))
        else:
            click.echo(f"authctl: {self.format_message()}", file=file, err=True)


def json_requested(args: Sequence[str]) -> bool:
    """Whether ``--json`` is on the command line, wherever it stands (before a ``--``).

    Known before click parses anything, so even a usage error can answer in JSON.
    """
    words = list(args)
    return "--json" in (words[: words.index("--")] if "--" in words else words)


@contextlib.contextmanager
def one_line(as_json: Callable[[], bool]) -> Iterator[None]:
    """Turn click's multi-line usage errors and our AuthdErrors into a :class:`Failure`."""
    try:
        yield
    except Failure as e:
        e.as_json = as_json()
        raise
    except click.exceptions.NoArgsIsHelpError:
        raise  # bare `authctl` prints its help, as click does
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx is not None else ""
        raise _json(
            Failure(e.format_message().rstrip(".") + hint, EXIT_USAGE, "usage"), as_json
        ) from e
    except click.Abort as e:
        raise _json(Failure("aborted", EXIT_FAILURE, "aborted"), as_json) from e
    except AuthdError as e:
        raise _json(Failure(e.message, e.exit_code, e.code), as_json) from e


def _json(f: Failure, as_json: Callable[[], bool]) -> Failure:
    f.as_json = as_json()
    return f


@dataclass
class State:
    client: ControlClient
    as_json: bool = False

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        human: Callable[[Doc], str],
        name: tuple[str, str] | None = None,
    ) -> Doc:
        """Ask the daemon, then print its answer: as JSON with ``--json``, else ``human(doc)``.

        ``name`` is (NAME, the path listing such names): if the daemon knows no NAME, the
        failure suggests the nearest name it does know.
        """
        try:
            doc = self.client.request(method, path, dict(body) if body is not None else None)
        except NotFound as e:
            if name is None:
                raise
            raise self._suggest(e, *name) from e
        self.show(doc, human)
        return doc

    def _suggest(self, e: NotFound, name: str, listing: str) -> Failure:
        import difflib  # only on this failure path: authctl's start stays lean

        try:  # quickly, or not at all: the failure itself is already certain
            doc = ControlClient(self.client.path, timeout=2.0).request("GET", listing)
        except AuthdError:
            doc = {}
        near = difflib.get_close_matches(name, sorted(output.names(doc)), n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(n) for n in near)}?" if near else ""
        return Failure(e.message + hint, e.exit_code, e.code, did_you_mean=near)

    def show(self, doc: Doc, human: Callable[[Doc], str]) -> None:
        text = output.as_json(doc) if self.as_json else human(doc)
        if text:
            click.echo(text)


def _json_after(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    state = ctx.find_object(State)
    if value and state is not None:  # None while completing: no group callback has run
        state.as_json = True


def json_option() -> click.Option:
    """``--json`` after the subcommand too: ``authctl list --json`` is ``authctl --json list``."""
    return click.Option(
        ["--json"],
        is_flag=True,
        expose_value=False,
        callback=_json_after,
        help="print the daemon's JSON answer (same as authctl --json)",
    )


class AuthctlCommand(click.Command):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(json_option())


class AuthctlGroup(click.Group):
    """A group of subcommands (``authctl upstream-key ...``); takes ``--json`` as well."""

    command_class = AuthctlCommand
    group_class = type  # subgroups are AuthctlGroups too

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.append(json_option())


class Authctl(click.Group):
    """The root group: every failure below it becomes one :class:`Failure`."""

    command_class = AuthctlCommand
    group_class = AuthctlGroup

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        wanted = json_requested(args)
        with one_line(lambda: wanted):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta["authctl.json"] = wanted
        return ctx

    def invoke(self, ctx: click.Context) -> Any:
        def wanted() -> bool:
            state = ctx.find_object(State)
            return bool(ctx.meta.get("authctl.json")) or (state is not None and state.as_json)

        with one_line(wanted):
            return super().invoke(ctx)
