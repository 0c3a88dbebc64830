"""The control socket is never bound where another user could take its place.

authctl trusts whatever listens at the socket path: it sends imported secrets and upstream
keys there and believes the answer ("revoked"). In a directory others may write (a socket
configured under /tmp, a group-writable directory), a local user could bind the path while
the daemon restarts, or remove and replace the daemon's socket, and then receive those
secrets and fake a revocation. The daemon refuses to start there; every ancestor up to /
counts (whoever can rename a parent can swap the whole subtree), unless it is sticky.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from localai_authd.control.access import bind_socket
from localai_authd.errors import ControlSocketError
from tests.control.conftest import short_dir


@pytest.fixture
def base() -> Iterator[Path]:
    d = short_dir("sockdir-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("mode", [0o777, 0o1777, 0o770, 0o775, 0o757, 0o1770])
@pytest.mark.parametrize("depth", [0, 1])
def test_a_directory_others_may_write_is_refused(base: Path, mode: int, depth: int) -> None:
    loose = base / "loose"
    loose.mkdir()
    os.chmod(loose, mode)
    parent = loose / "run" if depth else loose
    parent.mkdir(exist_ok=True)
    os.chmod(parent, 0o750 if depth else mode)
    if depth and mode & stat.S_ISVTX:
        # A sticky ancestor (like /tmp) cannot have our entry in it renamed by others.
        bind_socket(parent / "control.sock", "").close()
        return
    with pytest.raises(ControlSocketError) as e:
        bind_socket(parent / "control.sock", "")
    assert str(loose) in e.value.message
    assert not (parent / "control.sock").exists()


def test_an_ancestor_owned_by_another_user_is_refused(base: Path) -> None:
    other = base / "other"
    (other / "run").mkdir(parents=True)
    os.chmod(other / "run", 0o700)
    if os.geteuid() != 0:
        pytest.skip("needs root to give a directory to another uid")
    os.chown(other, 65534, -1)  # nobody: could rename "run" and put their own in place
    with pytest.raises(ControlSocketError) as e:
        bind_socket(other / "run" / "control.sock", "")
    assert "uid 65534" in e.value.message


@pytest.mark.parametrize("mode", [0o700, 0o750, 0o755, 0o711])
def test_private_directories_are_fine(base: Path, mode: int) -> None:
    d = base / "run"
    d.mkdir()
    os.chmod(d, mode)
    sock = bind_socket(d / "control.sock", "")
    try:
        assert stat.S_ISSOCK(os.lstat(d / "control.sock").st_mode)
    finally:
        sock.close()


def test_a_directory_created_by_the_daemon_is_fine(base: Path) -> None:
    sock = bind_socket(base / "new" / "deeper" / "control.sock", "")
    sock.close()
    assert stat.S_IMODE(os.stat(base / "new" / "deeper").st_mode) == 0o750
