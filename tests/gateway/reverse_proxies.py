"""Real nginx and Caddy from Debian, configured for forward-auth in front of an upstream.

Each runs in the foreground as a child of the test, with its own config, state and logs
under a temp dir, on a free 127.0.0.1 port, and is ended by its PID.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tests.daemon_harness import free_port

NGINX = """\
daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
    listen 127.0.0.1:{port};
    location = /_authd {{
      internal;
      proxy_pass {gateway}/localai-authd/verify;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
    }}
    location / {{
      auth_request /_authd;
      auth_request_set $authd_key $upstream_http_x_authd_key;
      auth_request_set $authd_scopes $upstream_http_x_authd_scopes;
      proxy_set_header X-Authd-Key $authd_key;
      proxy_set_header X-Authd-Scopes $authd_scopes;
      proxy_set_header Authorization "";
      proxy_set_header X-Api-Key "";
      proxy_http_version 1.1;
      proxy_buffering off;
      proxy_pass {upstream};
    }}
  }}
}}
"""

CADDY = """\
{{
  admin off
  auto_https off
  storage file_system {d}/data
}}
http://127.0.0.1:{port} {{
  bind 127.0.0.1
  route {{
    forward_auth {gateway_hostport} {{
      uri /localai-authd/verify
      copy_headers X-Authd-Key X-Authd-Scopes
    }}
    request_header -Authorization
    request_header -X-Api-Key
    reverse_proxy {upstream_hostport}
  }}
}}
"""


@dataclass
class Proxy:
    name: str
    url: str
    proc: asyncio.subprocess.Process
    log: Path

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def _wait_port(port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    for _ in range(300):
        if proc.returncode is not None:
            raise AssertionError(f"exited {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        w.close()
        return
    raise AssertionError(f"not listening on {port}: {log.read_text(errors='replace')}")


def which(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


async def _start_nginx(d: Path, gateway_url: str, upstream_url: str) -> Proxy:
    exe = which("nginx")
    assert exe is not None
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = d / "nginx.conf"
    conf.write_text(NGINX.format(d=d, port=port, gateway=gateway_url, upstream=upstream_url))
    log = d / "stderr.log"
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            exe,
            "-c",
            str(conf),
            "-p",
            str(d),
            "-e",
            str(d / "error.log"),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    await _wait_port(port, proc, log)
    return Proxy("nginx", f"http://127.0.0.1:{port}", proc, log)


async def _start_caddy(d: Path, gateway_url: str, upstream_url: str) -> Proxy:
    exe = which("caddy")
    assert exe is not None
    d.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = d / "Caddyfile"
    conf.write_text(
        CADDY.format(
            d=d,
            port=port,
            gateway_hostport=gateway_url.removeprefix("http://"),
            upstream_hostport=upstream_url.removeprefix("http://"),
        )
    )
    log = d / "stderr.log"
    env = {
        **os.environ,
        "HOME": str(d),
        "XDG_DATA_HOME": str(d / "data"),
        "XDG_CONFIG_HOME": str(d / "config"),
    }
    with open(log, "wb") as err:
        proc = await asyncio.create_subprocess_exec(
            exe,
            "run",
            "--config",
            str(conf),
            "--adapter",
            "caddyfile",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=err,
            stderr=err,
            env=env,
        )
    await _wait_port(port, proc, log)
    return Proxy("caddy", f"http://127.0.0.1:{port}", proc, log)


async def _retrying(
    start: Callable[[Path, str, str], Awaitable[Proxy]], d: Path, gw: str, up: str
) -> Proxy:
    """free_port() can race another process for the port between the pick and the bind:
    try a fresh port then, a few times."""
    for attempt in range(4):
        try:
            return await start(d / f"try{attempt}", gw, up)
        except AssertionError as e:
            if "address already in use" not in str(e).lower() or attempt == 3:
                raise
    raise AssertionError("unreachable")


async def start_nginx(d: Path, gateway_url: str, upstream_url: str) -> Proxy:
    return await _retrying(_start_nginx, d, gateway_url, upstream_url)


async def start_caddy(d: Path, gateway_url: str, upstream_url: str) -> Proxy:
    return await _retrying(_start_caddy, d, gateway_url, upstream_url)
