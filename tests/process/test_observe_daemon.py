"""The real daemon with [metrics] on: scrape, health, readiness, reload counts, `authctl audit`
(socket, file, follow, across a real logrotate run) and `authctl doctor`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.daemon_harness import AUTHCTL, Daemon, free_port
from tests.fakeupstream import FakeUpstream


@pytest.fixture
async def daemon(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Daemon]:
    port = free_port()
    d = Daemon(
        upstream.url,
        tmp_path / "state",
        config_text=f'[metrics]\nlisten = "127.0.0.1:{port}"\n',
    )
    d.env["METRICS_PORT"] = str(port)
    async with d:
        yield d


def _metrics_url(d: Daemon) -> str:
    return f"http://127.0.0.1:{d.env['METRICS_PORT']}/metrics"


async def _scrape(d: Daemon) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with aiohttp.ClientSession() as s, s.get(_metrics_url(d)) as r:
        assert r.status == 200
        text = await r.text()
    return {
        (x.name, frozenset(x.labels.items())): x.value
        for f in text_string_to_metric_families(text)
        for x in f.samples
    }


async def test_metrics_health_ready_and_reloads(daemon: Daemon) -> None:
    key = (await daemon.authctl_json("create", "laptop"))["key"]
    async with aiohttp.ClientSession() as s:
        async with s.get(daemon.url + "/localai-authd/health") as r:
            assert r.status == 200
        async with s.get(daemon.url + "/localai-authd/ready") as r:
            assert (r.status, await r.json()) == (200, {"status": "ready"})
        for _ in range(3):
            async with s.get(
                daemon.url + "/api/tags", headers={"Authorization": f"Bearer {key}"}
            ) as r:
                assert r.status == 200
    daemon.send(signal.SIGHUP)
    # Not "reloading configuration": the file must not change before the reload has read it.
    await daemon.wait_log("reload applied", timeout=30)
    daemon.config_path.write_text("[metrics]\nlisten = 1\n")  # invalid: refused
    rc, _, _ = await daemon.authctl("reload", check=False)
    assert rc != 0
    m = await _scrape(daemon)
    labels = frozenset({("route", "models"), ("status_class", "2xx"), ("key", "laptop")})
    assert m[("localai_authd_requests_total", labels)] == 3
    assert m[("localai_authd_upstream_up", frozenset({("upstream", "/")}))] == 1
    for _ in range(100):
        m = await _scrape(daemon)
        if m.get(("localai_authd_reloads_total", frozenset({("outcome", "applied")}))):
            break
        await asyncio.sleep(0.05)
    assert m[("localai_authd_reloads_total", frozenset({("outcome", "applied")}))] == 1
    assert m[("localai_authd_reloads_total", frozenset({("outcome", "refused")}))] == 1
    build = [k for k in m if k[0] == "localai_authd_build_info"]
    assert build and ("version", "0.1.0") in build[0][1]


async def test_authctl_audit_through_the_socket_and_the_file(daemon: Daemon) -> None:
    key = (await daemon.authctl_json("create", "laptop"))["key"]
    audit_file = daemon.state_dir / "audit.jsonl"
    async with aiohttp.ClientSession() as s:
        async with s.get(daemon.url + "/api/tags", headers={"Authorization": f"Bearer {key}"}):
            pass
        async with s.get(daemon.url + "/api/tags", headers={"Authorization": "Bearer sk-x"}):
            pass
    await daemon.wait_log('"status":401')
    _, out, _ = await daemon.authctl("--json", "audit", "--key", "laptop", "--status", "2xx")
    recs = [json.loads(line) for line in out.splitlines()]
    assert [(r["kind"], r.get("path")) for r in recs] == [
        ("control", None),  # create
        ("request", "/api/tags"),
    ]
    _, out, _ = await daemon.authctl("audit", "--status", "4xx", "--since", "1h")
    assert "401" in out and "/api/tags" in out and key not in out
    _, direct, _ = await daemon.authctl(
        "--json", "audit", "--file", str(audit_file), "--status", "401"
    )
    assert [json.loads(x)["status"] for x in direct.splitlines()] == [401]


async def test_follow_across_a_real_logrotate_run(daemon: Daemon, tmp_path: Path) -> None:
    """The packaged logrotate snippet rotates, the daemon reopens on SIGHUP, and a follower
    (`authctl audit --follow`) goes on across it; `authctl audit` then reads both files."""
    exe = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin")
    if exe is None:
        pytest.skip("logrotate missing: apt-get install logrotate")
    key = (await daemon.authctl_json("create", "laptop"))["key"]
    audit_file = daemon.state_dir / "audit.jsonl"
    await _get(daemon, key, "/api/tags")
    follower = await asyncio.create_subprocess_exec(
        AUTHCTL, "--socket", str(daemon.control), "--json", "audit", "--follow",
        "--limit", "1", "--key", "laptop",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        # The newest record first: then the follower has read up to the end (no sleep: under
        # load a follower may start late and would begin after the next record).
        line = await asyncio.wait_for(_next_record(follower), 30)
        assert line["path"] == "/api/tags"
        await _get(daemon, key, "/api/ps")
        line = await asyncio.wait_for(_next_record(follower), 30)
        assert line["path"] == "/api/ps"
        await _logrotate(exe, daemon, audit_file, tmp_path)
        await _get(daemon, key, "/api/version")
        line = await asyncio.wait_for(_next_record(follower), 30)
        assert line["path"] == "/api/version"
    finally:
        follower.send_signal(signal.SIGINT)
        await asyncio.wait_for(follower.wait(), 10)
    assert (audit_file.parent / "audit.jsonl.1").exists()
    _, out, _ = await daemon.authctl("--json", "audit", "--key", "laptop")
    paths = [json.loads(x).get("path") for x in out.splitlines()]
    assert paths[-3:] == ["/api/tags", "/api/ps", "/api/version"]


async def _get(daemon: Daemon, key: str, path: str) -> None:
    async with (
        aiohttp.ClientSession() as s,
        s.get(daemon.url + path, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        assert r.status == 200


async def _next_record(p: asyncio.subprocess.Process) -> dict[str, object]:
    assert p.stdout is not None
    while True:
        line = await p.stdout.readline()
        assert line, "the follower ended"
        rec = json.loads(line)
        if rec.get("kind") == "request":
            return rec  # type: ignore[no-any-return]


async def _logrotate(exe: str, daemon: Daemon, audit_file: Path, tmp_path: Path) -> None:
    """The packaged snippet, pointed at this daemon's file and PID."""
    snippet = (Path(__file__).parents[2] / "packaging" / "logrotate" / "localai-authd").read_text()
    assert daemon.proc is not None
    conf = (
        snippet.replace("/var/log/localai-authd/audit.jsonl", str(audit_file))
        .replace("su localai-authd localai-admin", "")
        .replace("create 0640 localai-authd localai-admin", "create 0640")
        .replace(
            "systemctl kill --kill-whom=main --signal=HUP localai-authd.service",
            f"kill -HUP {daemon.proc.pid}",
        )
    )
    assert f"kill -HUP {daemon.proc.pid}" in conf
    (tmp_path / "logrotate.conf").write_text(conf)
    os.chmod(audit_file.parent, 0o700)
    p = await asyncio.create_subprocess_exec(
        exe, "-f", "-s", str(tmp_path / "logrotate.state"), str(tmp_path / "logrotate.conf"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(p.communicate(), 30)
    assert p.returncode == 0, out.decode()
    assert (audit_file.parent / "audit.jsonl.1").exists()
    await daemon.wait_log("reload applied", timeout=30)  # the new file is open


async def test_authctl_doctor_against_the_daemon(daemon: Daemon, tmp_path: Path) -> None:
    conf = tmp_path / "doctor.toml"
    conf.write_text(
        f'[[upstream]]\nurl = "{daemon.upstream_url}"\n'
        f'[state]\ndir = "{daemon.state_dir}"\n[keyring]\nbackend = "file"\n'
    )
    conf.chmod(0o644)
    rc, out, _ = await daemon.authctl("--json", "doctor", "--config", str(conf), check=False)
    doc = json.loads(out)
    checks = {c["name"].split(" ")[0]: c for c in doc["checks"]}
    assert checks["daemon"]["status"] == "ok"
    assert checks["keyring"]["status"] == "ok"
    assert "EncryptedFileKeyring" in checks["keyring"]["message"]
    upstream = [c for c in doc["checks"] if c["name"].startswith("upstream ")]
    assert upstream and upstream[0]["status"] == "ok"  # the fake upstream: loopback only
    assert rc == (1 if doc["result"] == "fail" else 0)


async def test_the_metrics_listener_serves_tls_when_it_has_a_certificate(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    """[metrics] with tls_cert/tls_key (what a listener beyond loopback must have): the real
    daemon serves /metrics over TLS with that certificate, and nothing in plain HTTP."""
    import ssl

    from tests.certs import make_certs

    certs = make_certs(tmp_path / "tls")
    port = free_port()
    d = Daemon(
        upstream.url,
        tmp_path / "state",
        config_text=(
            f'[metrics]\nlisten = "127.0.0.1:{port}"\n'
            f'tls_cert = "{certs.path("server-chain.pem")}"\n'
            f'tls_key = "{certs.path("server.key")}"\n'
        ),
    )
    async with d:
        await d.wait_log(f"metrics https://127.0.0.1:{port}/metrics", timeout=30)
        ctx = ssl.create_default_context(cafile=str(certs.path("ca.pem")))
        async with aiohttp.ClientSession() as s:
            async with s.get(f"https://127.0.0.1:{port}/metrics", ssl=ctx) as r:
                assert r.status == 200
                names = {f.name for f in text_string_to_metric_families(await r.text())}
            assert "localai_authd_build_info" in names and "localai_authd_requests" in names
            with pytest.raises(aiohttp.ClientError):  # plain HTTP gets no scrape
                async with s.get(f"http://127.0.0.1:{port}/metrics") as r:
                    await r.read()
            other = ssl.create_default_context()  # a client that does not trust our CA
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                async with s.get(f"https://127.0.0.1:{port}/metrics", ssl=other) as r:
                    await r.read()
