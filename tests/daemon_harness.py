"""Run the real `localai-authd` as a subprocess, with a notify socket the test owns."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

VENV_BIN = Path(sys.executable).parent
AUTHCTL = str(VENV_BIN / "authctl")
# The least a wait for the daemon gives it. Waits here are liveness bounds (a broken daemon
# fails instead of hanging), never measures of speed: on a busy machine a start, a reload or a
# log line can take many seconds, so a shorter timeout a test passes is raised to this.
PATIENCE = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    upstream_url: str
    state_dir: Path
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    config_text: str | None = None
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None
    notify: socket.socket | None = None
    messages: list[str] = field(default_factory=list)
    sockdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="lad", dir="/tmp")))
    stderr_path: Path | None = None
    listen_flag: bool = True  # False: the config's own listeners apply (flags would win)
    prefix: list[str] = field(default_factory=list)  # e.g. ["ip", "netns", "exec", "ns1"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def control(self) -> Path:
        return self.sockdir / "c.sock"

    @property
    def config_path(self) -> Path:
        return self.state_dir.parent / "config.toml"

    async def start(self, wait: bool = True) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        ns = self.sockdir / "notify.sock"
        if self.notify is None:
            self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.notify.bind(str(ns))
            self.notify.setblocking(False)
        args = [
            *self.prefix,
            str(VENV_BIN / "localai-authd"),
            *(["--listen", f"127.0.0.1:{self.port}"] if self.listen_flag else []),
            "--upstream",
            self.upstream_url,
            "--state-dir",
            str(self.state_dir),
            "--control-socket",
            str(self.control),
            "--keyring-backend",
            "file",
            *self.extra_args,
        ]
        if self.config_text is not None:
            self.config_path.write_text(self.config_text)
            args += ["--config", str(self.config_path)]
        env = {**os.environ, "NOTIFY_SOCKET": str(ns), "WATCHDOG_USEC": "300000", **self.env}
        env.pop("WATCHDOG_PID", None)
        self._drain()
        mark = len(self.messages)
        self.stderr_path = self.sockdir / "stderr.log"
        with open(self.stderr_path, "ab") as err:
            self.proc = await asyncio.create_subprocess_exec(
                *args,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=err,
            )
        if wait:
            self._drain()
            await self.wait_for("READY=1", after=mark)

    def stderr(self) -> str:
        return self.stderr_path.read_text() if self.stderr_path else ""

    async def wait_log(self, text: str, timeout: float = PATIENCE) -> str:
        """The daemon's stderr once it contains ``text`` (records land after the response)."""
        timeout = max(timeout, PATIENCE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            out = self.stderr()
            if text in out:
                return out
            await asyncio.sleep(0.02)
        raise AssertionError(f"{text!r} not in the daemon's log within {timeout}s")

    def _drain(self) -> None:
        assert self.notify is not None
        while True:
            try:
                data = self.notify.recv(4096)
            except BlockingIOError:
                return
            self.messages.extend(data.decode().split("\n"))

    async def wait_for(self, line: str, timeout: float = PATIENCE, after: int = 0) -> int:
        """Index of the first notify line equal to (or starting with) ``line`` after ``after``."""
        timeout = max(timeout, PATIENCE)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            self._drain()
            for i in range(after, len(self.messages)):
                if self.messages[i] == line or self.messages[i].startswith(line):
                    return i
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.stderr()}")
            await asyncio.sleep(0.02)
        raise AssertionError(f"no {line!r} in {self.messages} within {timeout}s; {self.stderr()}")

    async def authctl(
        self, *args: str, stdin: bytes | None = None, check: bool = True
    ) -> tuple[int, str, str]:
        p = await asyncio.create_subprocess_exec(
            AUTHCTL,
            "--socket",
            str(self.control),
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(p.communicate(stdin), PATIENCE)
        assert p.returncode is not None
        if check and p.returncode != 0:
            raise AssertionError(f"authctl {args} failed {p.returncode}: {err.decode()}")
        return p.returncode, out.decode(), err.decode()

    async def authctl_json(self, *args: str, stdin: bytes | None = None) -> Any:
        _, out, _ = await self.authctl("--json", *args, stdin=stdin)
        return json.loads(out)

    def send(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    async def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = PATIENCE) -> int:
        if self.proc is None or self.proc.returncode is not None:
            return self.proc.returncode if self.proc and self.proc.returncode is not None else 0
        self.proc.send_signal(sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise

    def close(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
        if self.notify is not None:
            self.notify.close()
        shutil.rmtree(self.sockdir, ignore_errors=True)

    async def __aenter__(self) -> Daemon:
        """Started (and ready); stopped and cleaned up however the block ends."""
        try:
            await self.start()
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop()
        finally:
            self.close()


async def status(url: str, key: str, path: str = "/api/tags") -> int:
    """The status of a GET of ``path`` with ``key`` as a Bearer credential."""
    async with (
        aiohttp.ClientSession() as s,
        s.get(url + path, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        return r.status
