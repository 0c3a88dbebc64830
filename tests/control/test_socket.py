"""Creating the control socket: modes from the first instant, group, stale and foreign files."""

from __future__ import annotations

import grp
import logging
import os
import socket
import stat
from pathlib import Path

import pytest

from localai_authd.control.access import bind_socket
from localai_authd.errors import ControlSocketError
from localai_authd.keys.store import KeyStore
from tests.control.conftest import close_control, open_control
from tests.control.wire import http


def mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def own_group() -> str:
    return grp.getgrgid(os.getgid()).gr_name


async def test_no_group_means_0600_in_a_new_0750_dir(
    store: KeyStore, sock_dir: Path, tmp_path: Path
) -> None:
    old_umask = os.umask(0o022)
    try:
        c = await open_control(store, sock_dir, tmp_path / "audit.jsonl", admin_group="")
        assert os.umask(0o022) == 0o022  # restored after the bind
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_ISSOCK(os.lstat(c.sock).st_mode)
        assert mode(c.sock) == 0o600
        assert mode(c.sock.parent) == 0o750
    finally:
        await close_control(c)
    assert not c.sock.exists()


async def test_group_gets_0660(store: KeyStore, sock_dir: Path, tmp_path: Path) -> None:
    group = own_group()  # chgrp to one's own group needs no privilege
    c = await open_control(store, sock_dir, tmp_path / "audit.jsonl", admin_group=group)
    try:
        st = os.lstat(c.sock)
        assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == os.getgid()
        assert os.lstat(c.sock.parent).st_gid == os.getgid()
        assert (await http(c.sock, "GET", "/v1/status")).status == 200
    finally:
        await close_control(c)


async def test_missing_group_warns_and_stays_0600(
    store: KeyStore, sock_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="localai_authd.control"):
        c = await open_control(store, sock_dir, tmp_path / "a.jsonl", admin_group="no-such-grp")
    try:
        assert mode(c.sock) == 0o600
        assert any("'no-such-grp' does not exist" in r.getMessage() for r in caplog.records)
    finally:
        await close_control(c)


@pytest.mark.parametrize("dir_mode", [0o700, 0o755])
def test_existing_dir_keeps_its_mode(sock_dir: Path, dir_mode: int) -> None:
    run = sock_dir / "run"
    run.mkdir()
    os.chmod(run, dir_mode)
    sock = bind_socket(run / "c.sock", own_group())
    sock.close()
    assert mode(run) == dir_mode
    assert mode(run / "c.sock") == 0o660


def test_socket_is_never_looser_than_0600_even_before_chgrp(
    sock_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mode at bind time is what the umask made it; watch it at the chown that follows."""
    seen: list[int] = []
    real_chown = os.chown

    def watching_chown(path: str | Path, uid: int, gid: int) -> None:
        if str(path).endswith(".sock"):
            seen.append(mode(Path(path)))
        real_chown(path, uid, gid)

    monkeypatch.setattr(os, "chown", watching_chown)
    bind_socket(sock_dir / "run" / "c.sock", own_group()).close()
    assert seen == [0o600]


def test_stale_socket_is_replaced(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays; nobody listens
    sock = bind_socket(path, "")
    try:
        sock.listen()
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(str(path))
        probe.close()
    finally:
        sock.close()


def test_refuses_to_remove_a_file_that_is_not_a_socket(sock_dir: Path) -> None:
    path = sock_dir / "c.sock"
    path.write_text("precious")
    with pytest.raises(ControlSocketError, match="not a socket"):
        bind_socket(path, "")
    assert path.read_text() == "precious"


async def test_refuses_a_socket_someone_listens_on(
    store: KeyStore, sock_dir: Path, tmp_path: Path
) -> None:
    c = await open_control(store, sock_dir, tmp_path / "audit.jsonl")
    try:
        with pytest.raises(ControlSocketError, match="already running"):
            bind_socket(c.sock, "")
        assert (await http(c.sock, "GET", "/v1/status")).status == 200
    finally:
        await close_control(c)


def test_path_too_long_is_a_clear_error(sock_dir: Path) -> None:
    with pytest.raises(ControlSocketError, match="cannot create the control socket"):
        bind_socket(sock_dir / ("x" * 120), "")


async def test_close_leaves_a_successors_socket_alone(
    store: KeyStore, sock_dir: Path, tmp_path: Path
) -> None:
    c = await open_control(store, sock_dir, tmp_path / "audit.jsonl")
    os.unlink(c.sock)
    successor = bind_socket(c.sock, "")  # a new daemon took the path over
    try:
        await close_control(c)
        assert stat.S_ISSOCK(os.lstat(c.sock).st_mode)
    finally:
        successor.close()
