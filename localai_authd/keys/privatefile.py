"""Private files for the encrypted keyring: read only if 0600-tight, written whole or not at
all (temp file, fsync, rename or link, directory fsync), serialised by flock(2).

Cheap to import (stdlib and keyring's errors only): keyring imports the backend, and so
this module, whenever it loads its plugins.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

import keyring.errors

_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class KeyringFileError(keyring.errors.InitError):
    """The store, its key or its directory cannot be used; the message names the file and fix.

    Never carries a secret. Deliberately not a PasswordDeleteError, so callers that ignore
    "nothing to delete" never ignore this.
    """


def _temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")


def read_private(path: Path) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as f:
        check_private(os.fstat(f.fileno()), path)
        return f.read()


def check_private(st: os.stat_result, path: Path) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise KeyringFileError(f"{path} is not a regular file")
    if st.st_mode & 0o077:
        raise KeyringFileError(
            f"{path} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"refusing to use it: chmod 0600 {path}, and consider the secrets in it exposed"
        )


def create_key_file(path: Path, length: int) -> None:
    """Create the key file complete or not at all (caller holds the flock).

    A temp file then link(2): unlike writing into an O_EXCL-created key file directly, no
    reader ever sees an empty or partial key, and kill -9 cannot leave one behind. link
    fails if the name exists, so two creators can never end up with different keys.
    """
    tmp = _temp_name(path)
    fd = os.open(tmp, _OPEN_NEW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(length))
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = _temp_name(path)
    # Mode 0600 from creation: chmod afterwards would leave a window with the umask's mode.
    fd = os.open(tmp, _OPEN_NEW, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # The rename is durable only once the directory entry is on disk (fsync(2)).
    fsync_dir(path.parent)


def fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temps(d: Path, names: tuple[str, ...]) -> None:
    # Called under the flock: every writer holds it while its temp file exists, so any temp
    # file seen now was left by a crashed writer.
    prefixes = tuple(f".{n}." for n in names)
    for entry in os.scandir(d):
        if entry.name.startswith(prefixes) and entry.name.endswith(".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


@contextlib.contextmanager
def flock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


@contextlib.contextmanager
def os_errors() -> Iterator[None]:
    """OS failures as keyring errors, so keyring's callers see its documented exceptions."""
    try:
        yield
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        raise KeyringFileError(f"keyring file access failed{where}: {e.strerror or e}") from e
    except (ValueError, UnicodeError) as e:
        # json or UTF-8 failure after a successful GCM check: written by a different program.
        raise KeyringFileError(f"keyring store content is invalid: {type(e).__name__}") from e
