"""Who may reach the control plane: access is checked twice.

1. the file: the socket is bound under ``umask 0177`` so it is never looser than 0600, not
   even for an instant (no chmod-after-bind window); only then is it handed to the admin
   group (chgrp + 0660), inside a directory we create 0750;
2. the peer: every request's connection is asked for its credentials with ``SO_PEERCRED``
   (socket(7)); root, the daemon's own uid and members of the admin group pass. Membership is
   the user's whole group list (getgrouplist(3)): SO_PEERCRED only carries the primary gid.
"""

from __future__ import annotations

import grp
import logging
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ..errors import ControlSocketError, PermissionDenied

log = logging.getLogger("localai_authd.control")

# struct ucred { pid_t pid; uid_t uid; gid_t gid; } -- socket(7), SO_PEERCRED
_UCRED = struct.Struct("3i")


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(request: web.BaseRequest) -> Peer:
    """The credentials the kernel recorded when the peer connected (not spoofable by it)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        raise PermissionDenied("could not read the peer's credentials")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return Peer(*_UCRED.unpack(raw))


def authorize(uid: int, admin_group: str, daemon_uid: int) -> str | None:
    """None if ``uid`` may use the control plane, else why not (safe to show the peer)."""
    if uid in (0, daemon_uid):
        return None
    if not admin_group:
        return f"uid {uid} is not root or the daemon's own user"
    refusal = f"uid {uid} is not root or a member of group {admin_group!r}"
    try:
        gid = grp.getgrnam(admin_group).gr_gid
        user = pwd.getpwuid(uid)  # a uid without a passwd entry has no group list: refuse
    except KeyError:
        return refusal
    if gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return None
    return refusal


def _admin_gid(admin_group: str) -> int | None:
    if not admin_group:
        return None
    try:
        return grp.getgrnam(admin_group).gr_gid
    except KeyError:
        return None


def _prepare_dir(parent: Path, gid: int | None) -> None:
    try:
        parent.mkdir(parents=True, mode=0o750)
    except FileExistsError:
        return  # the operator's (or systemd's RuntimeDirectory=) modes stand: never loosen
    # mkdir's mode went through the umask; say exactly what we mean. Group r-x, no more: the
    # admin group must traverse it to reach the socket.
    os.chmod(parent, 0o750)  # noqa: S103
    if gid is not None:
        try:
            os.chown(parent, -1, gid)  # the group must be able to traverse to the socket
        except PermissionError:
            log.warning(
                "cannot give %s to gid %d; only its owner can reach the socket", parent, gid
            )


def _check_chain(parent: Path) -> None:
    """Refuse a socket directory where another user could put their own socket at our path.

    authctl trusts whatever listens there (it sends imported secrets and upstream keys, and
    believes "revoked"). The directory must be writable by its owner only, and it and every
    ancestor owned by root or us; an ancestor others may write is fine only if sticky (like
    /tmp), since the entry below it is then ours and cannot be renamed by them.
    """
    me = os.geteuid()
    real = Path(os.path.realpath(parent))
    for i, d in enumerate((real, *real.parents)):
        st = os.stat(d)
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (0, me):
            why = f"is owned by uid {st.st_uid}, not root or the daemon's user"
        elif mode & 0o022 and (i == 0 or not mode & stat.S_ISVTX):
            why = f"is writable by group or others (mode {mode:04o})"
        else:
            continue
        raise ControlSocketError(
            f"the control socket's directory {d} {why}: another user could put their own "
            f"socket at {parent}; use a directory only root or the daemon's user can write"
        )


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)  # nobody answers: left over from a process that died
    else:
        raise ControlSocketError(
            f"another process is listening on {path} (is localai-authd already running?)"
        )
    finally:
        probe.close()


def bind_socket(path: Path, admin_group: str) -> socket.socket:
    """A bound, not yet listening, Unix socket at ``path`` with the modes described above."""
    gid = _admin_gid(admin_group)
    _prepare_dir(path.parent, gid)
    _check_chain(path.parent)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is born 0600: there is no looser instant
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        raise ControlSocketError(f"cannot create the control socket {path}: {e}") from e
    finally:
        os.umask(old)
    if gid is not None:
        try:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        except PermissionError:
            log.warning(
                "cannot give the control socket %s to group %r (is the daemon's user a member?);"
                " it stays 0600: only root and the daemon's user can use it",
                path,
                admin_group,
            )
    elif admin_group:
        log.warning(
            "admin group %r does not exist: the control socket %s stays 0600 "
            "(only root and the daemon's user can use it)",
            admin_group,
            path,
        )
    return sock
