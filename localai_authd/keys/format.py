"""API key format: mint, parse, checksum. Pure: no I/O, no keyring.

A key looks like ``sk_local_<kid>_<secret><crc>``:

- ``sk_local_``: a fixed prefix that secret scanners can match;
- ``kid``: 12 base62 characters, the public key id (not secret; it is in the audit trail and
  is how a key is found in O(1));
- ``secret``: 43 base62 characters = 256 bits from :mod:`secrets` (62**43 > 2**256);
- ``crc``: 6 base62 characters, CRC32 of everything before it, as GitHub's tokens do, so a
  typo or a scanner hit can be judged without a lookup.

Only ``[A-Za-z0-9_]`` is used, so a double-click selects the whole key.
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass

PREFIX = "sk_local_"
KID_LEN = 12
SECRET_LEN = 43
CRC_LEN = 6
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_RE = re.compile(
    rf"{PREFIX}(?P<kid>[0-9A-Za-z]{{{KID_LEN}}})_(?P<body>[0-9A-Za-z]{{{SECRET_LEN}}})"
    rf"(?P<crc>[0-9A-Za-z]{{{CRC_LEN}}})"
)
KEY_LEN = len(PREFIX) + KID_LEN + 1 + SECRET_LEN + CRC_LEN
# Scanners (gitleaks, trufflehog custom rules) can use this without anchors.
SCANNER_REGEX = rf"{PREFIX}[0-9A-Za-z]{{{KID_LEN}}}_[0-9A-Za-z]{{{SECRET_LEN + CRC_LEN}}}"


def base62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    if n:
        raise ValueError("number does not fit in width")
    return "".join(reversed(out))


# Every two-character base62 string, by value: a 6-digit checksum is three lookups instead
# of six divisions (bench/: the checksum was 1 µs of every key check).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def checksum(text: str) -> str:
    high, low = divmod(zlib.crc32(text.encode("ascii")), 3844)  # 62**2; CRC32 < 62**6
    top, mid = divmod(high, 3844)
    return _PAIRS[top] + _PAIRS[mid] + _PAIRS[low]


def new_kid() -> str:
    return base62(secrets.randbelow(62**KID_LEN), KID_LEN)


def mint(kid: str) -> str:
    """A new key for ``kid``: 256 bits of secret plus a checksum."""
    body = base62(secrets.randbits(256), SECRET_LEN)
    head = f"{PREFIX}{kid}_{body}"
    return head + checksum(head)


@dataclass(frozen=True)
class ParsedKey:
    kid: str


def parse(key: str) -> ParsedKey | None:
    """The key's id if ``key`` has our shape and a valid checksum, else None.

    None means "not one of our keys" (it may still be an imported legacy secret).
    """
    if len(key) != KEY_LEN:
        return None
    m = KEY_RE.fullmatch(key)
    if m is None:
        return None
    if not secrets.compare_digest(checksum(key[:-CRC_LEN]), m.group("crc")):
        return None
    return ParsedKey(kid=m.group("kid"))


def looks_like_key(text: str) -> bool:
    """True for anything that starts like one of our keys (used to refuse imports of them)."""
    return text.startswith(PREFIX)
