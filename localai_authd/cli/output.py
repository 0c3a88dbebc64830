"""authctl's output: human tables and pairs, or JSON. Pure formatting: strings in, strings out."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from typing import Any


def when(t: object, none: str = "never") -> str:
    if not isinstance(t, int | float) or isinstance(t, bool):
        return none
    try:  # NaN, Infinity and far-off times from a daemon of another version: never crash
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (ValueError, OverflowError, OSError):
        return "?"


def printable(text: str) -> str:
    """``text`` safe for a terminal: control, format (bidi) and line-separator characters
    escaped. Audit records carry what clients sent (a model name, a path), and an escape
    sequence or a line break in them would act on the operator's terminal or forge lines."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escaped(c) for c in text)


def _escaped(c: str) -> str:
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def joined(v: object, empty: str) -> str:
    return ", ".join(str(x) for x in v) if isinstance(v, list) and v else empty


def as_json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True)


def error_json(code: str, message: str, **details: Any) -> str:
    """A failure as scripts read it: the control socket's own ``{"error": {...}}`` shape."""
    return as_json({"error": {"code": code, "message": message, **details}})


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    )


def pairs(pairs: Sequence[tuple[str, str]]) -> str:
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in pairs)


def key_pairs(k: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        ("name", str(k.get("name"))),
        ("kid", str(k.get("kid"))),
        ("state", str(k.get("state"))),
        ("scopes", joined(k.get("scopes"), "none")),
        ("models", joined(k.get("models"), "any")),
        ("created", when(k.get("created"), "-")),
        ("expires", when(k.get("expires"))),
        ("rotated", when(k.get("rotated_at"), "-")),
        ("previous secret until", when(k.get("previous_secret_valid_until"), "-")),
        ("revoked", when(k.get("revoked_at"), "-")),
        ("imported", "yes" if k.get("imported") else "no"),
        ("certificates", joined(k.get("cert_subjects"), "-")),
        ("limits", _limits(k.get("limits"))),
    ]


def _limits(v: object) -> str:
    if not isinstance(v, Mapping):
        return "-"
    given = [f"{k}={x}" for k, x in v.items() if x is not None]
    return ", ".join(given) or "config defaults"


def key_table(keys: Sequence[Mapping[str, Any]]) -> str:
    rows = [key_pairs(k)[:7] for k in keys]  # name .. expires
    return table([n.upper() for n, _ in rows[0]], [[v for _, v in row] for row in rows])


def names(doc: Mapping[str, Any]) -> set[str]:
    """The names in a listing: ``{"keys": [{"name": ...}]}`` or ``{"upstream_keys": [...]}``."""
    found: set[str] = set()
    for items in doc.values():
        for item in items if isinstance(items, list) else []:
            name = item.get("name") if isinstance(item, Mapping) else item
            if isinstance(name, str):
                found.add(name)
    return found


def flatten(doc: object, prefix: str = "") -> list[tuple[str, str]]:
    """Nested status documents as ``a.b: value`` lines."""
    if isinstance(doc, Mapping):
        out: list[tuple[str, str]] = []
        for k, v in doc.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(doc, list) and any(isinstance(x, Mapping | list) for x in doc):
        return [p for i, x in enumerate(doc) for p in flatten(x, f"{prefix}[{i}]")]
    if isinstance(doc, list):
        return [(prefix, joined(doc, "-"))]
    if doc is None:
        return [(prefix, "-")]
    return [(prefix, str(doc).lower() if isinstance(doc, bool) else str(doc))]
