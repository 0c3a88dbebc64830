"""What the soak watches in the daemon: resident memory and descriptors from /proc, asyncio
tasks from the control socket's status (`asyncio_tasks`)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tests.daemon_harness import Daemon


@dataclass(frozen=True)
class Sample:
    rss_kib: int
    fds: int
    tasks: int
    in_flight: int

    def line(self) -> str:
        return (
            f"rss {self.rss_kib / 1024:7.1f} MiB  fds {self.fds:4d}  tasks {self.tasks:4d}"
            f"  in flight {self.in_flight}"
        )


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def sample(daemon: Daemon) -> Sample:
    assert daemon.proc is not None
    pid = daemon.proc.pid
    status = await daemon.authctl_json("status")
    return Sample(
        rss_kib(pid), fd_count(pid), status["asyncio_tasks"], status["requests_in_flight"]
    )
