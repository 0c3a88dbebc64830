"""A real Go upstream that decodes bodies the way Ollama does, and a gateway in front of it.

The Go server (goupstream/main.go) is built once per session with Debian's golang-go into a
temp dir (GOCACHE/GOPATH there too); without ``go`` the tests that need it skip with the
package to install. It answers every request that acted on a model with ``{"acted": [...]}``
(fully qualified, as Ollama resolves names) and keeps them all in ``GET /__log``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from localai_authd.audit import Audit
from localai_authd.gateway.app import Gateway
from localai_authd.gateway.runner import GatewayRunner
from localai_authd.keys.store import KeyStore
from localai_authd.streams import StreamRegistry
from tests.conftest import gateway_config
from tests.control.conftest import Control, close_control, open_control, short_dir

GO_SOURCE = Path(__file__).parent / "goupstream" / "main.go"
# What the Go server lists on /api/tags, /api/ps and /v1/models.
LISTED = ("llama3:latest", "llama3.1:70b", "secret:latest", "evil.example/x/llama3:latest")


@pytest.fixture(scope="session")
def go_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("needs Go to build a real Go upstream: apt-get install golang-go")
    d = tmp_path_factory.mktemp("goupstream")
    env = {
        **os.environ,
        "GOCACHE": str(d / "cache"),
        "GOPATH": str(d / "gopath"),
        "GOFLAGS": "",
        "GO111MODULE": "off",  # one stdlib-only file: no module, no proxy
        "CGO_ENABLED": "0",
    }
    out = d / "goupstream"
    subprocess.run(
        [go, "build", "-o", str(out), str(GO_SOURCE)],
        check=True,
        env=env,
        cwd=d,
        capture_output=True,
        timeout=300,
    )
    return out


@dataclass
class GoUpstream:
    proc: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/__log", timeout=10) as r:
            return list(json.load(r) or [])


@pytest.fixture
def go_upstream(go_binary: Path) -> Iterator[GoUpstream]:
    proc = subprocess.Popen(
        [str(go_binary), "-models", ",".join(LISTED)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        yield GoUpstream(proc, int(line.split()[1]))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()


@dataclass
class GoGW:
    url: str
    store: KeyStore
    audit_path: Path
    go: GoUpstream

    def audit(self) -> list[dict[str, Any]]:
        return read_audit(self.audit_path)


@asynccontextmanager
async def gateway_to(
    upstream_url: str, store: KeyStore, audit_path: Path, **cfg: Any
) -> AsyncIterator[str]:
    """A gateway on 127.0.0.1 in front of ``upstream_url``; yields its URL."""
    audit = Audit(audit_path, to_log=False)
    cfg.setdefault("max_body_bytes", 1 << 20)
    gateway = Gateway(gateway_config(upstream_url, **cfg), store, audit, StreamRegistry())
    runner = GatewayRunner(gateway.make_app(0), handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
        audit.close()


def read_audit(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
async def go_gw(tmp_path: Path, store: KeyStore, go_upstream: GoUpstream) -> AsyncIterator[GoGW]:
    audit_path = tmp_path / "audit.jsonl"
    async with gateway_to(go_upstream.url, store, audit_path) as url:
        yield GoGW(url, store, audit_path, go_upstream)


@pytest.fixture
async def control(store: KeyStore, tmp_path: Path) -> AsyncIterator[Control]:
    """The control server on a socket under a short directory of its own, auditing to a file."""
    base = short_dir()
    c = await open_control(store, base, tmp_path / "audit.jsonl")
    yield c
    await close_control(c)
    shutil.rmtree(base, ignore_errors=True)
