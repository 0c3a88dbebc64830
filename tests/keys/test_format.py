"""The key format: prefix, alphabet, embedded id, 256 bits, checksum."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from localai_authd.keys import format as kf


def test_minted_keys_have_the_documented_shape() -> None:
    kid = kf.new_kid()
    key = kf.mint(kid)
    assert re.fullmatch(r"[A-Za-z0-9_]+", key)  # a double-click selects it whole
    assert key.startswith("sk_local_") and len(key) == kf.KEY_LEN
    assert re.search(kf.SCANNER_REGEX, f"leaked: {key}!")
    parsed = kf.parse(key)
    assert parsed is not None and parsed.kid == kid
    assert 62**kf.SECRET_LEN >= 2**256


def test_keys_differ_and_carry_their_kid() -> None:
    keys = {kf.mint("AAAAAAAAAAAA") for _ in range(200)}
    assert len(keys) == 200
    assert all(k.split("_")[2] == "AAAAAAAAAAAA" for k in keys)


def test_every_single_character_typo_is_caught_by_the_checksum() -> None:
    key = kf.mint(kf.new_kid())
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    for i in range(len(kf.PREFIX), len(key)):
        if key[i] == "_":
            continue
        c = alphabet[(alphabet.index(key[i]) + 1) % 62]
        assert kf.parse(key[:i] + c + key[i + 1 :]) is None, i


@given(st.text(max_size=120))
def test_parse_never_raises(text: str) -> None:
    kf.parse(text)
