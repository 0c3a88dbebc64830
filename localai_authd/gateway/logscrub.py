"""No credential in the journal: a logging filter that redacts what log records say.

aiohttp logs a malformed request with the offending raw line in the exception (which may
hold a credential): the event is kept, the details are dropped. Every other record (ours
included) has whatever looks like a credential redacted from its message and traceback.
"""

from __future__ import annotations

import logging

from ..redact import looks_like_credential, marked, redact

_AUDIT = "localai_authd.audit"
# Filters on a logger see only records logged to that very logger, not its children's:
# name each one that logs, and also filter the root logger's handlers (the journal).
_LOGGERS = (
    "aiohttp.access",
    "aiohttp.client",
    "aiohttp.internal",
    "aiohttp.server",
    "aiohttp.web",
    "aiohttp.websocket",
    "asyncio",
    "localai_authd",
    "localai_authd.audit",
    "localai_authd.control",
    "localai_authd.daemon",
    "localai_authd.gateway",
    "localai_authd.keys",
)


class Scrub(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_localai_scrubbed", False):
            return True
        record._localai_scrubbed = True
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and record.name.startswith("aiohttp"):
            record.msg = f"{record.getMessage()} ({type(exc).__name__}; details withheld)"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        elif record.exc_info:
            # Formatters reuse a record's exc_text once set: the traceback every handler
            # prints is then the redacted one (exc_info stays, for whoever inspects it).
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            if looks_like_credential(text):
                record.exc_text = redact(text)
        message = record.getMessage()
        # Audit lines are redacted field by field where they are built (a full scan of each
        # line cost ~25 us, more than the rest of a request's checks): only the cheap check.
        check = marked if record.name == _AUDIT else looks_like_credential
        if check(message):
            record.msg = redact(message)
            record.args = None
        return True


def install() -> None:
    """Idempotent: the daemon calls it at start, every quiet runner before it serves."""
    for name in _LOGGERS:
        _add(logging.getLogger(name))
    for handler in logging.getLogger().handlers:
        _add(handler)


def _add(target: logging.Filterer) -> None:
    if not any(isinstance(f, Scrub) for f in target.filters):
        target.addFilter(Scrub())
