"""Reload as a plan and a commit.

1. ``plan(old, new, files, old_files)`` is pure: from the config in force, the config just
   read and the TLS files just read, it says what changes now, what needs a restart, and
   every problem. No problem: the plan's config is what will be in force.
2. Each part that holds state (TLS contexts, the audit file, logging) *prepares* its new
   state; this may fail, and then every part prepared so far is aborted: nothing changed.
3. ``commit_all`` switches every part to its prepared state. A commit cannot fail: it only
   assigns what was built and closes what was replaced.

So a reload applies completely or not at all, and says which.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import Config, Listener

# Changing these needs a restart: the sockets and the keyring are opened once.
RESTART_ONLY = (
    "listen",
    "control_socket",
    "state_dir",
    "keyring_backend",
    "keyring_credential",
    "admin_group",
    "metrics",
)
_TLS_FILES = ("cert", "key", "client_ca", "client_crl")
_TLS_KEYS = {
    "cert": "tls_cert",
    "key": "tls_key",
    "client_ca": "client_ca",
    "client_crl": "client_crl",
}


@dataclass(frozen=True)
class FileRead:
    """What reading one file gave: a digest of its bytes and whether it looks like PEM,
    or why it could not be read."""

    digest: str = ""
    pem: bool = False
    error: str = ""

    @classmethod
    def of(cls, data: bytes) -> FileRead:
        return cls(hashlib.sha256(data).hexdigest(), b"-----BEGIN " in data)


Files = Mapping[Path, FileRead]


@dataclass(frozen=True)
class Plan:
    config: Config  # what will be in force: the new config, restart-only settings kept
    changes: tuple[str, ...] = ()  # what changes now, in words for the log and the answer
    restart_needed: tuple[str, ...] = ()  # settings that changed but apply only on restart
    problems: tuple[str, ...] = ()  # any problem: nothing is applied
    files: Files = dataclasses.field(default_factory=dict)


def tls_files(cfg: Config) -> list[tuple[str, str, Path]]:
    """(listener, config key, path) of every file the TLS listeners of ``cfg`` load."""
    out = []
    for lst in cfg.listen:
        if lst.tls is not None:
            for attr in _TLS_FILES:
                p = getattr(lst.tls, attr)
                if p is not None:
                    out.append((f"listener {lst.address}", _TLS_KEYS[attr], p))
    return out


def read_files(*configs: Config) -> dict[Path, FileRead]:
    """Read every TLS file the configs name (blocking: run it off the event loop)."""
    out: dict[Path, FileRead] = {}
    for cfg in configs:
        for _, _, p in tls_files(cfg):
            if p not in out:
                try:
                    out[p] = FileRead.of(p.read_bytes())
                except OSError as e:
                    out[p] = FileRead(error=e.strerror or type(e).__name__)
    return out


def _sockets(cfg: Config) -> list[tuple[str, bool]]:
    return [(str(lst.address), lst.tls is not None) for lst in cfg.listen]


def _listener_changes(old: Listener, new: Listener) -> list[str]:
    if old == new:
        return []
    fields = [
        f.name for f in dataclasses.fields(new) if getattr(old, f.name) != getattr(new, f.name)
    ]
    if old.tls is not None and new.tls is not None and old.tls != new.tls:
        fields.remove("tls")
        fields += [
            _TLS_KEYS.get(f.name, f.name)
            for f in dataclasses.fields(new.tls)
            if getattr(old.tls, f.name) != getattr(new.tls, f.name)
        ]
    return [f"listener {new.address}: {', '.join(fields)}"]


def plan(old: Config, new: Config, files: Files, old_files: Files | None = None) -> Plan:
    """What a reload from ``old`` to ``new`` does, given the TLS ``files`` read for it (and
    those read for the config in force, to name content changes). Pure."""
    restart = [k for k in RESTART_ONLY if getattr(new, k) != getattr(old, k)]
    if "listen" in restart and _sockets(new) == _sockets(old):
        restart.remove("listen")  # same sockets: TLS files and listener rules apply now
    effective = dataclasses.replace(new, **{k: getattr(old, k) for k in restart})

    changes: list[str] = []
    for f in dataclasses.fields(Config):
        if f.name in ("source", *RESTART_ONLY):
            continue
        if getattr(old, f.name) != getattr(effective, f.name):
            changes.append(f.name)
    if effective.listen is not old.listen:
        for o, n in zip(old.listen, effective.listen, strict=True):
            changes += _listener_changes(o, n)

    problems: list[str] = []
    used: dict[Path, FileRead] = {}
    for where, key, p in tls_files(effective):
        read = files.get(p, FileRead(error="not read"))
        used[p] = read
        if read.error:
            problems.append(f"{where} {key}: cannot read {p}: {read.error}")
        elif not read.pem:
            problems.append(f"{where} {key}: {p} is not a PEM file (-----BEGIN ... lines)")
        elif old_files is not None and p in old_files and old_files[p].digest != read.digest:
            changes.append(f"{where}: {key} {p} has new content")
    return Plan(effective, tuple(changes), tuple(restart), tuple(problems), used)


@dataclass(frozen=True)
class Prepared:
    """One part's new state, built: ``commit`` switches to it and cannot fail; ``abort``
    releases what was built (an opened file) when another part fails to prepare."""

    commit: Callable[[], None]
    abort: Callable[[], None] = lambda: None


def prepare_all(steps: Iterable[Callable[[], Prepared]]) -> list[Prepared]:
    """Run every prepare step; if one raises, abort those already prepared and re-raise."""
    done: list[Prepared] = []
    try:
        for step in steps:
            done.append(step())
    except BaseException:
        for p in reversed(done):
            p.abort()
        raise
    return done


def commit_all(prepared: Iterable[Prepared]) -> None:
    for p in prepared:
        p.commit()
