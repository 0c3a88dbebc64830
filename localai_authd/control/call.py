"""One control request as an operation sees it: its own module, so that operations kept
in modules of their own (usage_ops, audit_ops) and the dispatch table in handlers.py
import it without importing each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .context import ControlContext

Result = tuple[int, dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One authorised request, decoded: the operation's inputs and who asked."""

    ctx: ControlContext
    peer_uid: int
    params: Mapping[str, str]  # from the path, percent-decoded
    body: Mapping[str, Any]  # the JSON object, fields already checked against the table
