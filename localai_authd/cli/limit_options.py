"""The per-key limit options that ``authctl create`` and ``authctl set`` share.

Each takes a value, or ``default`` to fall back to the daemon's config default (with
``set``; on ``create`` leaving the option out does the same).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..durations import parse_duration

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT = "default"
MAX_LIMIT = 10**12


class LimitValue(click.ParamType[int | float | str, Any]):
    """A whole number (or a duration, for ``--max-keep-alive``), or ``default``."""

    def __init__(self, duration: bool = False) -> None:
        self.duration = duration
        self.name = "duration" if duration else "integer"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | float | str:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value  # a default given in code
        text = str(value)
        if text == DEFAULT:
            return DEFAULT
        if self.duration:
            try:
                return parse_duration(text)
            except ValueError as e:
                self.fail(f"{e} (or 'default')", param, ctx)
        if not (text.isascii() and text.isdigit() and int(text) <= MAX_LIMIT):
            self.fail(f"expected a whole number from 0 to {MAX_LIMIT} or 'default'", param, ctx)
        return int(text)


# option name, Limits field, help
LIMIT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("--rpm", "requests_per_minute", "requests per minute"),
    ("--tpm", "tokens_per_minute", "tokens per minute"),
    ("--tpd", "tokens_per_day", "tokens per day"),
    ("--streams", "concurrent_streams", "concurrent streams"),
    ("--max-keep-alive", "max_keep_alive", "the longest keep_alive a request may ask, e.g. 5m"),
    ("--max-num-ctx", "max_num_ctx", "the largest options.num_ctx a request may ask"),
)


def limit_options(fn: F) -> F:
    for flag, field, text in reversed(LIMIT_OPTIONS):
        duration = field == "max_keep_alive"
        fn = click.option(
            flag,
            field,
            type=LimitValue(duration),
            metavar="DURATION" if duration else "N",
            help=f"{text} ('default': the config's)",
        )(fn)
    return fn


def limits_body(values: dict[str, Any]) -> dict[str, Any]:
    """The ``limits`` object for the daemon: only the options given; 'default' is null."""
    fields = [field for _, field, _ in LIMIT_OPTIONS]
    return {
        f: (None if values[f] == DEFAULT else values[f])
        for f in fields
        if values.get(f) is not None
    }
