"""Who may use the control socket, with a real second uid.

authctl runs as a throwaway system user through setpriv, on Debian's /usr/bin/python3 with a
world-readable copy of the package and of click: pyenv's Python lives under /root (0700),
which another uid cannot execute.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import secrets
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

import localai_authd
from localai_authd.errors import EXIT_NOPERM
from localai_authd.keys.store import KeyStore
from tests.conftest import requires
from tests.control.conftest import Control, close_control, open_control, short_dir

pytestmark = [
    pytest.mark.root,
    # root: the test creates a user and a group.
    requires("useradd", apt="passwd", root=True),
    requires("setpriv", apt="util-linux"),
    requires("/usr/bin/python3", apt="python3"),  # a second uid cannot run pyenv's Python
]
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Stranger:
    user: str
    uid: int
    gid: int
    group: str  # the admin group made for the test; the user is not in it (yet)
    lib: Path  # world-readable copies of localai_authd and click

    def authctl(self, sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(["--reuid", str(self.uid), "--regid", str(self.gid), "--init-groups"],
                         sock, *args)  # fmt: skip

    def authctl_as_uid(self, uid: int, sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """As a uid that has no passwd entry at all."""
        return self._run(["--reuid", str(uid), "--regid", str(uid), "--clear-groups"], sock, *args)

    def _run(self, ids: list[str], sock: Path, *args: str) -> subprocess.CompletedProcess[str]:
        env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(self.lib), "LANG": "C.UTF-8",
               "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
        cmd = ["setpriv", *ids, SYSTEM_PYTHON, "-m", "localai_authd.cli", "--socket", str(sock)]
        return subprocess.run(
            [*cmd, *args], capture_output=True, text=True, env=env, cwd="/", timeout=60
        )


def _sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def stranger() -> Iterator[Stranger]:
    tag = secrets.token_hex(3)
    user, group = f"authdt-u{tag}", f"authdt-g{tag}"
    base = short_dir("ctl-lib-")
    try:
        os.chmod(base, 0o755)
        lib = base / "lib"
        skip = shutil.ignore_patterns("__pycache__")
        shutil.copytree(Path(localai_authd.__file__).parent, lib / "localai_authd", ignore=skip)
        shutil.copytree(Path(click.__file__).parent, lib / "click", ignore=skip)
        for d, _, files in os.walk(base):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        _sh("groupadd", "--system", group)
        _sh("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user)
        pw = pwd.getpwnam(user)
        yield Stranger(user, pw.pw_uid, pw.pw_gid, group, lib)
    finally:
        subprocess.run(["userdel", user], capture_output=True)
        subprocess.run(["groupdel", group], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def guarded(store: KeyStore, stranger: Stranger, tmp_path: Path) -> AsyncIterator[Control]:
    """The server with the test's admin group, in a directory any uid may traverse."""
    base = short_dir()
    os.chmod(base, 0o755)
    c = await open_control(store, base, tmp_path / "audit.jsonl", admin_group=stranger.group)
    try:
        yield c
    finally:
        await close_control(c)
        shutil.rmtree(base, ignore_errors=True)


async def test_socket_belongs_to_the_admin_group(guarded: Control, stranger: Stranger) -> None:
    gid = grp.getgrnam(stranger.group).gr_gid
    for path, mode in ((guarded.sock, 0o660), (guarded.sock.parent, 0o750)):
        st = os.lstat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_gid) == (mode, gid), path


async def test_a_outsider_is_stopped_by_the_file_modes(
    guarded: Control, stranger: Stranger
) -> None:
    r = await asyncio.to_thread(stranger.authctl, guarded.sock, "list")
    assert r.returncode == EXIT_NOPERM, r
    assert r.stderr == (
        f"authctl: permission denied on {guarded.sock}: run as root or as a member of the "
        "admin group (see README)\n"
    )
    assert r.stdout == ""
    assert guarded.audit() == []  # it never got as far as the daemon


async def test_b_loose_modes_still_meet_the_peer_check(
    guarded: Control, stranger: Stranger, caplog: pytest.LogCaptureFixture
) -> None:
    await guarded.store.create("laptop")
    before = guarded.snapshot()
    os.chmod(guarded.sock.parent, 0o755)  # a misconfiguration: anyone may connect
    os.chmod(guarded.sock, 0o666)
    r = await asyncio.to_thread(stranger.authctl, guarded.sock, "revoke", "laptop")
    assert r.returncode == EXIT_NOPERM, r
    assert r.stderr == (
        f"authctl: uid {stranger.uid} is not root or a member of group {stranger.group!r}\n"
    )
    assert guarded.snapshot() == before
    record = guarded.audit()[-1]
    assert (record["action"], record["peer_uid"], record["outcome"], record["reason"]) == (
        "revoke", stranger.uid, "failure", "permission_denied",
    )  # fmt: skip
    assert any(
        r.levelname == "WARNING" and f"uid {stranger.uid}" in r.getMessage() for r in caplog.records
    )

    # A uid with no passwd entry has no group list to be in: refused too.
    r = await asyncio.to_thread(stranger.authctl_as_uid, 54321, guarded.sock, "list")
    assert r.returncode == EXIT_NOPERM, r
    assert "uid 54321 is not root" in r.stderr


async def test_c_a_member_of_the_admin_group_is_allowed(
    guarded: Control, stranger: Stranger
) -> None:
    # A supplementary group, not the primary one: SO_PEERCRED's gid alone would miss it.
    _sh("usermod", "--append", "--groups", stranger.group, stranger.user)
    try:
        assert pwd.getpwnam(stranger.user).pw_gid != grp.getgrnam(stranger.group).gr_gid
        r = await asyncio.to_thread(stranger.authctl, guarded.sock, "create", "theirs")
        assert r.returncode == 0, r
        key = next(line for line in r.stdout.splitlines() if line.startswith("sk_local_"))
        assert guarded.store.verify(key) is not None
        assert guarded.audit()[-1]["peer_uid"] == stranger.uid
    finally:
        _sh("gpasswd", "--delete", stranger.user, stranger.group)
