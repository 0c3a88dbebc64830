"""systemd integration: sd_notify, the watchdog, socket activation. No-ops outside systemd.

sd_notify(3): READY=1 once serving, STATUS= lines, WATCHDOG=1 at half of WATCHDOG_USEC,
RELOADING=1 with MONOTONIC_USEC (systemd 252 has no Type=notify-reload: we send it ourselves,
then READY=1), STOPPING=1. sd_listen_fds(3): LISTEN_FDS/LISTEN_PID for a .socket unit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

import sdnotify

log = logging.getLogger("localai_authd.systemd")
SD_LISTEN_FDS_START = 3


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._n = sdnotify.SystemdNotifier() if self.enabled else None
        if self._n is not None and self._n.socket is not None:
            # Never block the event loop on a full notify socket: drop the message instead
            # (sdnotify swallows the BlockingIOError).
            self._n.socket.setblocking(False)

    def notify(self, *lines: str) -> None:
        if self._n is not None:
            self._n.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> None:
        self.notify(f"STATUS={status}")

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading configuration")

    def stopping(self) -> None:
        self.notify("STOPPING=1", "STATUS=stopping: draining streams")


def watchdog_interval() -> float | None:
    """Seconds between pings (half of WATCHDOG_USEC), or None when no watchdog is armed."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


async def watchdog(notifier: Notifier, interval: float) -> None:
    """Ping from the event loop itself: a blocked loop stops the pings and systemd acts."""
    while True:
        notifier.notify("WATCHDOG=1")
        await asyncio.sleep(interval)


def listen_fds() -> list[socket.socket]:
    """Sockets passed by systemd socket activation (LISTEN_FDS), meant for this process."""
    pid, n = os.environ.get("LISTEN_PID"), os.environ.get("LISTEN_FDS")
    if not n or not n.isdigit() or pid != str(os.getpid()):
        return []
    socks = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + int(n)):
        os.set_inheritable(fd, False)
        socks.append(socket.socket(fileno=fd))
    for var in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(var, None)
    return socks
