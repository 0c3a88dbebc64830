"""Logging: to stderr, which is the journal under systemd (no timestamps: it adds its own)."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

from .errors import ConfigError
from .gateway import logscrub
from .reload import Prepared

FORMAT = "%(levelname)s %(name)s: %(message)s"


class LineHandler(logging.StreamHandler[TextIO]):
    """The daemon's handler: one line per record on stderr (the journal).

    ``write_line`` puts out a line of text exactly as ``emit`` would format it at INFO, without
    building a LogRecord: the audit trail's copy of every request record goes this way
    (a LogRecord, the filters and the formatter were about half of the record's cost; bench/).
    Only for text that is already scrubbed, and only where this handler is the one that
    would write it (``direct_line``).
    """

    def __init__(self, stream: TextIO, with_time: bool) -> None:
        super().__init__(stream)
        self.with_time = with_time
        self.setFormatter(logging.Formatter(("%(asctime)s " if with_time else "") + FORMAT))
        self._second: tuple[int, str] = (-1, "")

    def _asctime(self, t: float) -> str:
        """logging.Formatter.formatTime's default text, each second formatted once."""
        sec = int(t)
        if self._second[0] != sec:
            self._second = (sec, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(sec)))
        return f"{self._second[1]},{int((t - sec) * 1000):03d}"

    def write_line(self, name: str, text: str) -> bool:
        """``text`` as an INFO record of logger ``name``; False if it could not be written
        (the caller then logs it the usual way, which reports the error as logging does)."""
        head = f"INFO {name}: "
        if self.with_time:
            head = f"{self._asctime(time.time())} {head}"
        try:
            with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
                self.stream.write(head + text + self.terminator)
                self.stream.flush()
        except Exception:
            return False
        return True


def direct_line(logger: logging.Logger) -> LineHandler | None:
    """The handler an INFO record of ``logger`` would reach, if that is all it would do:
    logging is set up as ``setup`` does, the level lets INFO through, and nobody (a test's
    log capture) has added handlers or filters other than the scrubbing ones (whose work the
    caller has done). Else None: log the usual way."""
    handlers = logging.root.handlers
    if len(handlers) != 1:
        return None
    # Every logger on the record's way up has its say: its handlers get the record too, and
    # one that does not propagate keeps it from the root's handler.
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if node.handlers or not node.propagate:
            return None
        node = node.parent
    h = handlers[0]
    if type(h) is not LineHandler or h.level > logging.INFO:
        return None
    for f in (*logger.filters, *h.filters):
        if type(f) is not logscrub.Scrub:
            return None
    return h if logger.isEnabledFor(logging.INFO) else None


def setup(level: str) -> None:
    handler = LineHandler(sys.stderr, with_time=not os.environ.get("JOURNAL_STREAM"))
    logging.basicConfig(level=level.upper(), handlers=[handler])
    logscrub.install()


def prepare_level(level: str) -> Prepared:
    """The root level a reload switches to; raises ConfigError for an unknown level."""
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        raise ConfigError([f"[log] level: unknown level {level!r}"])
    root = logging.getLogger()
    return Prepared(commit=lambda: root.setLevel(numeric))
