"""`authctl doctor`: what usually goes wrong, each as a check that says how to fix it.

Each check is a function returning :class:`Check` (name, "ok" / "warn" / "fail", message,
fix). They read files, ``/proc/net/tcp*`` and the kernel clock, and take everything else as
arguments (the config, the daemon's status if it answered), so tests drive them with real
files and fixtures. stdlib only: authctl never imports aiohttp, keyring or cryptography.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import grp
import ipaddress
import os
import pwd
import socket
import stat
import struct
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .config import Config

OK, WARN, FAIL = "ok", "warn", "fail"
DAEMON_USER = "localai-authd"
CREDSTORE = Path("/etc/credstore.encrypted")
KEY_FILE = "keyring.key"
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column
_BUILT = 1_764_547_200  # 2025-12-01: a clock before this is certainly wrong
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    message: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def worst(checks: Iterable[Check]) -> str:
    statuses = {c.status for c in checks}
    return FAIL if FAIL in statuses else WARN if WARN in statuses else OK


# ---- keyring -------------------------------------------------------------------------------


_UNTRUSTED_PREFIXES = ("keyrings.alt.", "keyring.backends.fail.", "keyring.backends.null.")


def check_keyring(cfg: Config, status: Mapping[str, Any] | None) -> Check:
    if status is not None and isinstance(status.get("keyring_backend"), str):
        name = status["keyring_backend"]
        if name.startswith(_UNTRUSTED_PREFIXES):
            return Check("keyring", FAIL, f"the daemon uses {name}", "set [keyring] backend")
        return Check(
            "keyring",
            OK,
            f"the daemon runs with {name} (it refuses to start with an untrusted backend)",
        )
    b = cfg.keyring_backend
    if b.startswith(_UNTRUSTED_PREFIXES):
        return Check(
            "keyring",
            FAIL,
            f"[keyring] backend = {b!r} keeps secrets in plaintext or nowhere",
            '[keyring] backend = "file"',
        )
    if b == "auto":
        return Check(
            "keyring",
            WARN,
            '[keyring] backend = "auto" follows keyring\'s detection, and a system service '
            "has no Secret Service (the daemon is not running to say what it chose)",
            '[keyring] backend = "file" for a system service',
        )
    return Check("keyring", OK, f"[keyring] backend = {b!r} (daemon not reachable)")


def check_credential(cfg: Config, credstore: Path = CREDSTORE) -> Check:
    """The file backend's master key: a sealed systemd credential, or the key-file fallback."""
    if cfg.keyring_backend not in ("file", "auto"):
        return Check("credential", OK, f"not used by backend {cfg.keyring_backend}")
    sealed = credstore / cfg.keyring_credential
    key_file = cfg.state_dir / KEY_FILE
    if _exists(sealed):
        return Check("credential", OK, f"sealed master key {sealed} (LoadCredentialEncrypted=)")
    if _exists(key_file):
        return Check(
            "credential",
            WARN,
            f"no sealed credential; the master key is the plain file {key_file}",
            f"systemd-creds encrypt --name={cfg.keyring_credential} {key_file} {sealed}, "
            "then remove the key file",
        )
    if cfg.keyring_backend == "file":
        return Check(
            "credential",
            WARN,
            f"neither {sealed} nor {key_file} exists (or they cannot be seen from here)",
            "run doctor as root; the package creates the credential at install",
        )
    return Check("credential", OK, "the encrypted file backend is not configured")


def _exists(p: Path) -> bool:
    try:
        return p.exists()
    except PermissionError:
        return False


# ---- listeners -----------------------------------------------------------------------------


def check_listeners(cfg: Config) -> list[Check]:
    out = []
    for lst in cfg.listen:
        parts = ["loopback" if lst.is_loopback else "BEYOND LOOPBACK"]
        tls = lst.tls
        if tls is None:
            parts.append("plain HTTP")
        else:
            parts.append("TLS")
            if tls.client_cert != "off":
                parts.append(f"client certificates {tls.client_cert}")
            if tls.require_key_with_cert:
                parts.append("certificate and key")
        basic = lst.basic_auth and (tls is not None or lst.is_loopback)
        parts.append("Basic on" if basic else "Basic off")
        name, message = f"listener {lst.address}", ", ".join(parts)
        if not lst.is_loopback and tls is None:
            out.append(Check(name, FAIL, message, "add tls_cert and tls_key, or bind loopback"))
        elif not lst.is_loopback and basic:
            out.append(
                Check(
                    name,
                    WARN,
                    message,
                    "basic_auth = false unless clients need it (a Basic password is a key)",
                )
            )
        else:
            out.append(Check(name, OK, message))
    m = cfg.metrics
    if m.listen is not None:
        name = f"metrics {m.listen}"
        where = "loopback" if m.listen.is_loopback else "BEYOND LOOPBACK"
        how = "plain HTTP" if m.tls is None else "TLS"
        if m.tls is not None and m.tls.client_cert != "off":
            how += ", client certificates required"
        if not m.listen.is_loopback and m.tls is None:
            out.append(Check(name, FAIL, f"{where}, {how}", "add tls_cert and tls_key"))
        else:
            out.append(Check(name, OK, f"{where}, {how} (metrics name keys and clients)"))
    return out


# ---- the upstream's own sockets ------------------------------------------------------------


def parse_proc_net_tcp(text: str, v6: bool) -> list[tuple[str, int]]:
    """(address, port) of the listening sockets in a /proc/net/tcp or tcp6 text."""
    out = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN:
            continue
        addr_hex, _, port_hex = fields[1].partition(":")
        try:
            # The kernel prints the address as 32-bit words, each as the number the
            # machine's own byte order makes of it: packing them natively restores the bytes.
            words = [int(addr_hex[i : i + 8], 16) for i in range(0, len(addr_hex), 8)]
            packed = struct.pack(f"={len(words)}I", *words)
            family = socket.AF_INET6 if v6 else socket.AF_INET
            out.append((socket.inet_ntop(family, packed), int(port_hex, 16)))
        except (ValueError, struct.error, OSError):
            continue
    return out


def listening(proc: Path = Path("/proc/net")) -> list[tuple[str, int]]:
    socks: list[tuple[str, int]] = []
    for name, v6 in (("tcp", False), ("tcp6", True)):
        try:
            socks += parse_proc_net_tcp((proc / name).read_text(), v6)
        except OSError:
            continue
    return socks


def _beyond_loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_loopback


def check_upstreams(cfg: Config, socks: list[tuple[str, int]]) -> list[Check]:
    out = []
    for u in cfg.upstreams:
        parts = urlsplit(u.url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        name = f"upstream {u.url}"
        try:
            local = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
        if not local:
            out.append(
                Check(
                    name,
                    WARN,
                    f"{host} is not this host's loopback: whoever can reach it there "
                    "bypasses the gateway (not checked from here)",
                    "firewall the upstream so that only this host reaches it",
                )
            )
            continue
        on_port = [a for a, p in socks if p == port]
        exposed = sorted({a for a in on_port if _beyond_loopback(a)})
        if exposed:
            shown = ", ".join(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in exposed)
            out.append(
                Check(
                    name,
                    FAIL,
                    f"the upstream also listens on {shown}: anyone who reaches that address "
                    "talks to it directly, without a key",
                    f"bind it to loopback, e.g. OLLAMA_HOST=127.0.0.1:{port} "
                    "(systemctl edit ollama), or firewall the port",
                )
            )
        elif not on_port:
            out.append(Check(name, WARN, f"nothing listens on port {port}", "start the upstream"))
        else:
            out.append(Check(name, OK, f"listens on loopback only (port {port})"))
    return out


# ---- files ---------------------------------------------------------------------------------


def _owner(st: os.stat_result) -> str:
    try:
        user = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        user = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return f"{user}:{group}"


def check_path(
    label: str,
    path: Path,
    forbid: int,
    warn: int = 0,
    owner: str | None = None,
    required: bool = False,
) -> Check:
    """``forbid``: mode bits that fail (e.g. 0o002); ``warn``: bits that only warn."""
    name = f"{label} {path}"
    try:
        st = path.lstat()
    except FileNotFoundError:
        status = FAIL if required else OK
        return Check(name, status, "does not exist", "create it" if required else "")
    except PermissionError:
        return Check(name, WARN, "cannot be examined from here", "run doctor as root")
    mode = stat.S_IMODE(st.st_mode)
    who = _owner(st)
    msg = f"mode {mode:04o}, owner {who}"
    if stat.S_ISLNK(st.st_mode):
        return Check(name, WARN, f"is a symbolic link ({msg})", "use the real path")
    if mode & forbid:
        return Check(name, FAIL, msg, f"chmod {mode & ~forbid:04o} {path}")
    if mode & warn:
        return Check(name, WARN, msg, f"chmod {mode & ~warn:04o} {path}")
    if owner is not None and who.split(":")[0] not in (owner, "root"):
        return Check(name, WARN, msg, f"chown {owner} {path}")
    return Check(name, OK, msg)


def check_files(cfg: Config, config_path: Path | None, socket_path: Path) -> list[Check]:
    daemon = DAEMON_USER if _user_exists(DAEMON_USER) else None
    out = []
    if config_path is not None:
        out.append(check_path("config", config_path, forbid=0o022, owner="root", required=True))
    out.append(check_path("state dir", cfg.state_dir, forbid=0o007, warn=0o070, owner=daemon))
    out.append(check_path("key file", cfg.state_dir / KEY_FILE, forbid=0o077, owner=daemon))
    out.append(check_path("socket dir", socket_path.parent, forbid=0o007, owner=daemon))
    out.append(check_path("socket", socket_path, forbid=0o007, owner=daemon))
    if cfg.audit_file is not None:
        out.append(check_path("audit file", cfg.audit_file, forbid=0o007, owner=daemon))
    return out


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


# ---- the clock -----------------------------------------------------------------------------


def kernel_clock() -> tuple[int, float] | None:
    """adjtimex(2) read-only: (clock state, maximum error in seconds); None if unavailable."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    libc = ctypes.CDLL(libc_name, use_errno=True)
    buf = ctypes.create_string_buffer(256)  # struct timex is 208 bytes on 64-bit Linux
    state = libc.adjtimex(buf)  # modes = 0 (the buffer is zeroed): only reads
    if state < 0:
        return None
    # struct timex: int modes (+pad), long offset, long freq, long maxerror (microseconds)
    maxerror = struct.unpack_from("=q", buf.raw, 24)[0] if ctypes.sizeof(ctypes.c_long) == 8 else 0
    return int(state), maxerror / 1e6


def check_clock(now: float, kernel: tuple[int, float] | None, leeway: float) -> Check:
    if now < _BUILT:
        return Check(
            "clock",
            FAIL,
            f"the clock says {time.strftime('%Y-%m-%d', time.gmtime(now))}, before this "
            "release: token expiry cannot work",
            "set the time and enable NTP (timedatectl set-ntp true)",
        )
    if kernel is None:
        return Check("clock", WARN, "cannot read the kernel's clock state (adjtimex)")
    state, maxerror = kernel
    if state == _TIME_ERROR:
        return Check(
            "clock",
            WARN,
            "the kernel says the clock is not synchronised: token expiry (leeway "
            f"{leeway:g}s) depends on it",
            "enable NTP: timedatectl set-ntp true (or chrony/systemd-timesyncd)",
        )
    if maxerror > leeway:
        return Check(
            "clock",
            WARN,
            f"the clock's estimated maximum error ({maxerror:g}s) exceeds the token leeway "
            f"({leeway:g}s)",
            "check NTP synchronisation",
        )
    return Check("clock", OK, f"synchronised (maximum error {maxerror:g}s)")


# ---- all of them ---------------------------------------------------------------------------


def run(
    cfg: Config,
    config_path: Path | None,
    socket_path: Path,
    status: Mapping[str, Any] | None,
    daemon_problem: str = "",
) -> list[Check]:
    checks = [
        Check("daemon", OK, f"answers on {socket_path}")
        if status is not None
        else Check(
            "daemon", WARN, daemon_problem or "not reachable", "systemctl start localai-authd"
        )
    ]
    checks.append(check_keyring(cfg, status))
    checks.append(check_credential(cfg))
    checks += check_listeners(cfg)
    checks += check_upstreams(cfg, listening())
    checks += check_files(cfg, config_path, socket_path)
    checks.append(check_clock(time.time(), kernel_clock(), cfg.tokens.leeway))
    return checks
