"""Logging: to stderr, which is the journal under systemd (no timestamps: it adds its own)."""

from __future__ import annotations

import logging
import os
import sys

from .errors import ConfigError
from .gateway import logscrub
from .reload import Prepared


def setup(level: str) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    logscrub.install()


def prepare_level(level: str) -> Prepared:
    """The root level a reload switches to; raises ConfigError for an unknown level."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError([f"[log] level: unknown level {level!r}"])
    root = logging.getLogger()
    return Prepared(commit=lambda: root.setLevel(numeric))
