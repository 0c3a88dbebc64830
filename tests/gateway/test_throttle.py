"""Brute force: failed authentications per source, throttled before credentials are checked;
the audit lines are what the shipped fail2ban filter reads (checked with fail2ban-regex)."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from localai_authd.gateway.throttle import MAX_SOURCES, AuthThrottle, source_key
from localai_authd.limitsconfig import LimitsConfig
from tests.conftest import GW, GwFactory

FILTER = Path(__file__).parents[2] / "packaging/fail2ban/filter.d/localai-authd.conf"
JAIL = Path(__file__).parents[2] / "packaging/fail2ban/jail.d/localai-authd.conf"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_per_minute_then_cooldown() -> None:
    clock = Clock()
    t = AuthThrottle(3, 300, clock)
    for _ in range(2):
        t.failed("192.0.2.1")
        clock.now += 25
    assert t.retry_after("192.0.2.1") == 0
    t.failed("192.0.2.1")
    clock.now += 1  # three failures in 50 s: blocked for the cooldown
    assert t.retry_after("192.0.2.1") == pytest.approx(299)
    assert t.retry_after("192.0.2.2") == 0
    clock.now += 300
    assert t.retry_after("192.0.2.1") == 0


def test_failures_spread_over_more_than_a_minute_do_not_block() -> None:
    clock = Clock()
    t = AuthThrottle(3, 300, clock)
    for _ in range(10):
        t.failed("192.0.2.1")
        clock.now += 31
    assert t.retry_after("192.0.2.1") == 0


def test_ipv6_counts_per_64_and_sources_are_bounded() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::2")
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.1") == "192.0.2.1"
    t = AuthThrottle(2, 60, Clock())
    for i in range(MAX_SOURCES + 10):
        t.failed(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    assert len(t._sources) == MAX_SOURCES


async def _throttled_gw(make_gw: GwFactory) -> GW:
    gw = await make_gw()
    lim = LimitsConfig(failed_auth_per_minute=3, failed_auth_cooldown=60)
    gw.gateway.apply_config(dataclasses.replace(gw.gateway.cfg, limits=lim))
    return gw


async def test_a_source_that_fails_is_refused_even_with_a_valid_key(
    make_gw: GwFactory, http: Any
) -> None:
    gw = await _throttled_gw(make_gw)
    good = await gw.key()
    bad = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    for h in ({"Authorization": f"Bearer {bad}"}, {}, {"x-api-key": "nonsense"}):
        async with http.get(gw.url + "/api/tags", headers=h) as r:
            assert r.status == 401
    async with http.get(gw.url + "/v1/models", headers={"Authorization": f"Bearer {good}"}) as r:
        assert r.status == 429
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert (await r.json())["error"]["code"] == "auth_throttled"
    # Another source address is not affected.
    conn = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with (
        aiohttp.ClientSession(connector=conn) as other,
        other.get(gw.url + "/api/tags", headers={"Authorization": f"Bearer {good}"}) as r,
    ):
        assert r.status == 200
    recs = gw.audit()
    assert [r["status"] for r in recs] == [401, 401, 401, 429, 200]
    assert recs[3]["reason"] == "auth_throttled" and recs[3]["client"] == "127.0.0.1"
    assert recs[3]["key_id"] is None  # its key was never looked at


async def test_fail2ban_filter_matches_the_real_audit_lines(
    make_gw: GwFactory, http: Any, tmp_path: Path
) -> None:
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban-regex not installed (apt-get install fail2ban)")
    gw = await _throttled_gw(make_gw)
    good = await gw.key()
    for h in (
        {"Authorization": f"Bearer {good}"},  # success: not a match
        {"Authorization": "Bearer sk-local-wrong"},
        {"Authorization": "Basic !!!"},  # malformed
        {"Authorization": 'Bearer x"client":"6.6.6.6"'},
        {"Authorization": f"Bearer {good}"},  # throttled now
    ):
        async with http.get(gw.url + '/api/"client":"6.6.6.6",', headers=h) as r:
            await r.read()
    lines = gw.audit_path.read_text().splitlines()
    statuses = [json_status(x) for x in lines]
    assert statuses[0] == 404 and statuses[-1] == 429 and len(lines) == 5
    out = subprocess.run(
        ["fail2ban-regex", "-v", str(gw.audit_path), str(FILTER)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    m = re.search(r"Lines: (\d+) lines, (\d+) ignored, (\d+) matched, (\d+) missed", out)
    assert m is not None, out
    assert m.groups() == ("5", "0", "4", "1"), out
    found = set(re.findall(r"^\|\s+(\d+\.\d+\.\d+\.\d+)\s", out, re.M))
    assert found == {"127.0.0.1"}, out  # never an address written by the client


def json_status(line: str) -> int:
    m = re.search(r'"status":(\d+)', line)
    assert m is not None
    return int(m.group(1))


def test_jail_ships_disabled_and_names_the_filter() -> None:
    text = JAIL.read_text()
    assert re.search(r"^enabled = false$", text, re.M)
    assert re.search(r"^filter = localai-authd$", text, re.M)
    assert "/var/log/localai-authd/audit.jsonl" in text
