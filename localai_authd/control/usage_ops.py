"""The control operation behind `authctl usage [NAME] [--since 1d]`.

Kept apart from handlers.py (one function per key operation there); registered in its
OPERATIONS table. The usage store is the daemon's (usage.py), read in memory.
"""

from __future__ import annotations

from typing import Any

from ..durations import parse_duration
from ..errors import NotFound, UsageError
from ..keys.model import check_name
from .call import Call, Result

MAX_SINCE = 400 * 86400.0


def _since(body: Any) -> float | None:
    value = body.get("since")
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise UsageError("field 'since' must be a duration like \"1d\" or a number of seconds")
    try:
        seconds = parse_duration(value)
    except ValueError as e:
        raise UsageError(f"field 'since': {e}") from e
    if not 0 <= seconds <= MAX_SINCE:
        raise UsageError("field 'since' must be from 0 to 400 days")
    return seconds


async def usage(call: Call) -> Result:
    store = call.ctx.usage
    since = _since(call.body)
    if store is None:  # a control plane without a gateway (tests): nothing was used
        return 200, {"since": since, "days_kept": 0, "keys": []}
    kid = None
    name = call.body.get("name")
    if name is not None:
        problem = check_name(name) if isinstance(name, str) else "field 'name' must be a string"
        if problem:
            raise UsageError(problem)
        try:
            kid = call.ctx.store.get(name).kid
        except NotFound:
            kid = store.kid_of(name)  # a key deleted since: its usage is still known
            if kid is None:
                raise
    rows = store.report(since, kid)
    return 200, {"since": since, "days_kept": store.history_days, "keys": rows}
