"""Names, globs, limits and stored values: full matches, and no crash on any stored value."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localai_authd.keys.globs import check_glob
from localai_authd.keys.model import (
    Identity,
    Limits,
    check_cert_subject,
    check_name,
    limit_problem,
)

# What an attacker appends or embeds to get past a "^...$" validator.
TRICKS = ["\n", "\r", "\t", "\x00", "\u2028", "\u2029", "\x85", " ", "\x0b", "\x0c", "\x7f"]


@pytest.mark.parametrize("trick", TRICKS)
@pytest.mark.parametrize("where", ["end", "start", "middle"])
def test_names_subjects_globs_refuse_control_and_separator_characters(
    trick: str, where: str
) -> None:
    def place(base: str) -> str:
        return {"end": base + trick, "start": trick + base, "middle": base[:2] + trick + base[2:]}[
            where
        ]

    assert check_name(place("backdoor")) is not None
    assert check_glob(place("llama3*")) is not None
    if not (trick == " " and where == "middle"):  # "CN one" is a fine subject
        assert check_cert_subject(place("client.example")) is not None


@pytest.mark.parametrize("good", ["llama3*", "qwen2.5:7b", "hf.co/x/y:*", "l[a-c]ma", "m[!x]?"])
def test_good_globs(good: str) -> None:
    assert check_glob(good) is None


@pytest.mark.parametrize(
    "bad",
    [
        *["", "[", "llama[", "llama[3", "a]", "[]", "[!]", "a[[b]", "!x", "x" * 201, "é"],
        *["a//b", "/llama3", "llama3:", "a/b/c/d/e"],  # unreadable as a model reference
    ],
)
def test_malformed_globs(bad: str) -> None:
    assert check_glob(bad) is not None


@given(st.text(max_size=80))
def test_an_accepted_name_is_exactly_the_allowed_alphabet(name: str) -> None:
    if check_name(name) is None:
        assert 1 <= len(name) <= 64 and name[0].isascii() and name[0].isalnum()
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in name)


def test_limits_bounds() -> None:
    assert limit_problem("requests_per_minute", 60) is None
    assert limit_problem("requests_per_minute", None) is None
    for bad in (-1, 1.5, True, "60", 10**13, math.nan):
        assert limit_problem("requests_per_minute", bad) is not None, bad
    assert limit_problem("max_keep_alive", 300.0) is None
    for bad in (-1, math.nan, math.inf, 1e308, True):
        assert limit_problem("max_keep_alive", bad) is not None, bad


def _stored(**over: object) -> dict[str, object]:
    base = Identity("k" * 12, "a", ("inference",), 1.0).to_json()
    base.update(over)
    return base


@pytest.mark.parametrize(
    "over",
    [
        {"expires": math.nan},
        {"expires": math.inf},
        {"expires": "tomorrow"},
        {"expires": True},
        {"created": math.nan},
        {"revoked_at": -math.inf},
        {"limits": {"requests_per_minute": math.nan, "max_keep_alive": -1}},
        {"limits": "lots"},
        {"suspended": "no"},
        {"state": "weird"},
        {"scopes": "inference"},
        {"scopes": 5},
        {"scopes": ["inference", "root"]},
        {"models": "llama3*"},
        {"models": [1]},
        {"cert_subjects": 3},
        {"verifiers": [{"digest": "00", "created": math.nan, "not_after": math.inf}]},
    ],
)
def test_no_stored_value_crashes_a_reader(over: dict[str, object]) -> None:
    ident = Identity.from_json(json.loads(json.dumps(_stored(**over))))
    public = ident.public(2e9)
    json.dumps(public, allow_nan=False)  # the control plane can always answer
    assert not (over.get("expires") is not None and ident.usable(2e9))  # fail closed
    assert set(ident.scopes) <= {"inference"}  # never wider than what was stored
    if "models" in over:  # unreadable models would read as "any model": suspended instead
        assert ident.suspended and not ident.usable(2e9)


def test_an_old_table_row_loads_with_default_limits() -> None:
    row = _stored()
    for k in ("limits", "suspended", "retired"):
        del row[k]
    ident = Identity.from_json(row)
    assert ident.limits == Limits() and ident.suspended is False and ident.retired == ()
