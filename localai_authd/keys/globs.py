"""Model globs as a key stores them: which spellings are accepted at all.

Only syntax lives here (matching is :mod:`localai_authd.modelref`'s). A glob is
1-200 characters of what model references are made of plus ``* ? [ ] !``, and every ``[``
opens a non-empty class closed by a ``]``: ``fnmatch`` would silently read an unbalanced
``[`` as a literal, so the pattern would not mean what the operator typed.
"""

from __future__ import annotations

import re

from ..modelref import BadReference, parse_glob
from ..redact import looks_like_credential

MAX_GLOB = 200
_CHARS = re.compile(rf"[A-Za-z0-9._:/*?\[\]!@+-]{{1,{MAX_GLOB}}}")


def check_glob(glob: object) -> str | None:
    """A problem with ``glob`` as a model pattern, or None."""
    if isinstance(glob, str) and looks_like_credential(glob):
        # Patterns are listed and answered everywhere: never repeat this one.
        return "invalid model pattern: it looks like a key or token, and patterns are not secret"
    if not isinstance(glob, str) or not _CHARS.fullmatch(glob):
        return (
            f"invalid model pattern {glob!r}: use 1-{MAX_GLOB} characters from "
            "A-Z a-z 0-9 . _ - : / @ + and the wildcards * ? [...]"
        )
    i = 0
    while i < len(glob):
        c = glob[i]
        if c == "]":
            return f"invalid model pattern {glob!r}: ']' without '['"
        if c == "!":
            return f"invalid model pattern {glob!r}: '!' only negates a [...] class"
        if c == "[":
            j = i + 1
            if j < len(glob) and glob[j] == "!":
                j += 1
            start = j
            while j < len(glob) and glob[j] not in "[]":
                j += 1
            if j >= len(glob) or glob[j] != "]":
                return f"invalid model pattern {glob!r}: '[' without a closing ']'"
            if j == start:
                return f"invalid model pattern {glob!r}: an empty [] class"
            i = j
        i += 1
    try:
        parse_glob(glob)
    except BadReference as e:
        return f"invalid model pattern {glob!r}: {e}"
    return None
