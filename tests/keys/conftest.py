"""Fixtures for the keyring tests: a clean keyring environment and a real Secret Service.

The Secret Service is gnome-keyring on a private D-Bus session bus, both started here and
stopped by PID. The bus has no service directories, so nothing can be D-Bus-activated behind
our back (an activated gnome-keyring would be a second, locked, unowned daemon).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_unless

SECRET_SERVICE_PACKAGES = "gnome-keyring dbus"
_SECRETS_NAME = "org.freedesktop.secrets"

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


@pytest.fixture(autouse=True)
def _clean_keyring_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test starts with no keyring selection, no credentials and no session bus."""
    for var in (
        "PYTHON_KEYRING_BACKEND",
        "LOCALAI_AUTHD_KEYRING_DIR",
        "CREDENTIALS_DIRECTORY",
        "STATE_DIRECTORY",
        "DBUS_SESSION_BUS_ADDRESS",
    ):
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if var.startswith("KEYRING_PROPERTY_"):
            monkeypatch.delenv(var)
    # keyring reads keyringrc from $XDG_CONFIG_HOME/python_keyring; keyrings.alt writes
    # under $XDG_DATA_HOME: keep both away from the real home.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))


def _require_binaries() -> None:
    skip_unless("dbus-daemon", "gnome-keyring-daemon", apt=SECRET_SERVICE_PACKAGES)


def _name_has_owner(address: str, name: str) -> bool:
    from jeepney import DBus
    from jeepney.io.blocking import open_dbus_connection

    with open_dbus_connection(bus=address) as conn:
        reply = conn.send_and_get_reply(DBus().NameHasOwner(name), timeout=2)
    return bool(reply.body[0])


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _secret_service(base: Path, *, unlock: bool) -> Iterator[str]:
    """Start dbus-daemon + gnome-keyring-daemon under ``base``; yield the bus address."""
    _require_binaries()
    home, run = base / "home", base / "run"
    home.mkdir()
    run.mkdir(mode=0o700)
    config = base / "bus.conf"
    config.write_text(_BUS_CONFIG.format(socket=run / "bus"))
    started: list[subprocess.Popen[bytes]] = []
    try:
        bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # "Failed to set fd limit" as non-root-in-container
        )
        started.append(bus)
        assert bus.stdout is not None
        address = bus.stdout.readline().decode().strip()
        if not address:
            pytest.fail(f"dbus-daemon did not start (exit {bus.wait(timeout=5)})")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_RUNTIME_DIR": str(run),
            "DBUS_SESSION_BUS_ADDRESS": address,
        }
        # --foreground: the PID we hold is the daemon, so teardown stops exactly it.
        args = ["gnome-keyring-daemon", "--foreground", "--components=secrets"]
        keyring_daemon = subprocess.Popen(
            [*args, "--unlock"] if unlock else args,
            stdin=subprocess.PIPE if unlock else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        started.append(keyring_daemon)
        if unlock:
            # --unlock reads the login keyring's password from stdin (until EOF).
            assert keyring_daemon.stdin is not None
            keyring_daemon.stdin.write(b"test-password")
            keyring_daemon.stdin.close()
        deadline = time.monotonic() + 15
        while not _name_has_owner(address, _SECRETS_NAME):
            if keyring_daemon.poll() is not None:
                pytest.fail(f"gnome-keyring-daemon exited with {keyring_daemon.returncode}")
            if time.monotonic() > deadline:
                pytest.fail("gnome-keyring-daemon did not claim org.freedesktop.secrets in 15 s")
            time.sleep(0.05)
        yield address
    finally:
        for proc in reversed(started):
            _stop(proc)


@pytest.fixture(scope="session")
def secret_service_bus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Address of a session bus with an unlocked gnome-keyring (shared by the session)."""
    yield from _secret_service(tmp_path_factory.mktemp("ss"), unlock=True)


@pytest.fixture
def secret_service(secret_service_bus: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test (only) at the unlocked Secret Service."""
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", secret_service_bus)
    return secret_service_bus


@pytest.fixture
def locked_secret_service(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A gnome-keyring that was never unlocked: every access needs a prompt nobody answers."""
    for address in _secret_service(tmp_path_factory.mktemp("ss-locked"), unlock=False):
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
        yield address
