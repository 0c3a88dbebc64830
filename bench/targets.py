"""The processes of a run: the lean upstream, nginx and localai-authd, and /proc readings.

Every process is started here, pinned with taskset, remembered by PID and ended by that PID
(SIGTERM/SIGQUIT, then SIGKILL after a bound). Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCT_PY = ROOT / ".venv" / "bin" / "python"
AUTHD = ROOT / ".venv" / "bin" / "localai-authd"
CLK_TCK = os.sysconf("SC_CLK_TCK")

TARGET_CPU = "0"  # the measured proxy gets core 0 to itself
RIG_CPU = "1"  # upstream, load generators and the harness share core 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


# ---- /proc ----------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    out: list[int] = []
    with contextlib.suppress(OSError):
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/children") as f:
                out += [int(x) for x in f.read().split()]
    return out


def cpu_seconds(pids: list[int]) -> float:
    """CPU time (user + system) of each process, all its threads: from
    /proc/PID/task/*/schedstat (nanoseconds on CPU) where the kernel has it, else utime +
    stime from /proc/PID/stat (10 ms ticks: too coarse for a 1-second cell)."""
    total = 0.0
    for pid in pids:
        try:
            ns = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    ns += int(f.read().split()[0])
            total += ns / 1e9
        except (OSError, ValueError, IndexError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime
    return total


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


# ---- processes ----------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM
    log: Path | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 15.0) -> None:
        if self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, self.stop_signal)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(5)


def _pinned(cpu: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if cpu is not None else cmd


def check_product_tree() -> None:
    """The daemon under test is this checkout's: ``.venv``'s editable install can point at
    another clone (made there by ``pip install -e`` in that clone), and then every figure
    would silently be that clone's."""
    out = subprocess.run(
        [str(PRODUCT_PY), "-c", "import localai_authd; print(localai_authd.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd="/",  # not this directory: the import must come from the install
    )
    where = Path(out.stdout.strip()).resolve()
    if not where.is_relative_to(ROOT.resolve()):
        raise SystemExit(
            f"bench: {PRODUCT_PY} imports localai_authd from {where.parent}, not from {ROOT}; "
            f"run: {PRODUCT_PY} -m pip install --no-deps -e {ROOT}"
        )


@dataclass
class Target:
    """One way to reach the upstream: its port and the processes whose CPU/memory count."""

    name: str
    port: int
    proc: Proc | None = None
    variant: str = ""

    def pids(self) -> list[int]:
        if self.proc is None:
            return []
        if self.name == "nginx":  # the master only forks; the worker(s) do the work
            return [self.proc.pid, *children(self.proc.pid)]
        return [self.proc.pid]

    def worker_pids(self) -> list[int]:
        if self.name == "nginx" and self.proc is not None:
            return children(self.proc.pid)
        return self.pids()


@dataclass
class Rig:
    tmp: Path
    pin: bool = True
    upstream_port: int = 0
    key: str = ""
    bad_key: str = ""
    procs: list[Proc] = field(default_factory=list)
    targets: dict[str, Target] = field(default_factory=dict)

    @property
    def target_cpu(self) -> str | None:
        return TARGET_CPU if self.pin else None

    @property
    def rig_cpu(self) -> str | None:
        return RIG_CPU if self.pin else None

    # upstream -----------------------------------------------------------------------------

    def start_upstream(self) -> Proc:
        self.upstream_port = free_port()
        log = self.tmp / "upstream.log"
        with log.open("wb") as out:
            p = subprocess.Popen(
                _pinned(
                    self.rig_cpu,
                    [sys.executable, "-m", "bench.upstream", "--port", str(self.upstream_port)],
                ),
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        proc = Proc("upstream", p, log=log)
        self.procs.append(proc)
        wait_port(self.upstream_port)
        self.targets["direct"] = Target("direct", self.upstream_port)
        return proc

    # localai-authd ------------------------------------------------------------------------

    def seed_key(self) -> None:
        check_product_tree()
        state = self.tmp / "authd-state"
        state.mkdir(mode=0o700, exist_ok=True)
        out = subprocess.run(
            [str(PRODUCT_PY), str(ROOT / "bench" / "authbench.py"), "seed", str(state)],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        self.key = json.loads(out.stdout)["key"]

    def authd_config(
        self, audit_log: bool = True, legacy: bool = False, metrics: bool = False
    ) -> Path:
        name = f"authd{'' if audit_log else '-nolog'}{'-legacy' if legacy else ''}"
        cfg = self.tmp / f"{name}{'-metrics' if metrics else ''}.toml"
        # Production settings: audit to a file AND to the log (the journal, in production;
        # here stderr to a file). Timeouts are the shipped defaults. Two limits are raised
        # (not turned off: their work is still measured): the brute-force throttle, which
        # W1/W5's interleaved bad keys from one address would trip (then every request is a
        # 429), and the per-source connection cap, which W4's thousands of idle streams from
        # 127.0.0.1 are over. A ``legacy`` variant (a checkout from before those sections
        # existed) gets neither: its config check would refuse them. ``metrics``: the
        # Prometheus listener on (a free loopback port), so every request feeds it.
        text = f'[audit]\nlog = {str(audit_log).lower()}\n\n[log]\nlevel = "info"\n'
        if metrics:
            text += f'\n[metrics]\nlisten = "127.0.0.1:{free_port()}"\n'
        if not legacy:
            text += (
                "\n[limits]\nfailed_auth_per_minute = 1000000000\n"
                "\n[connections]\nmax_per_source = 60000\nmax_total = 60000\n"
            )
        cfg.write_text(text)
        return cfg

    def start_authd(
        self, port: int | None = None, name: str = "localai-authd", variant: str = ""
    ) -> Target:
        """The daemon. ``variant`` (for A/B runs) is a comma-separated list of: a source
        checkout's root to run instead of this one, ``uvloop``, ``audit-log-off``, ``metrics``,
        ``gc-freeze``, ``gc-relaxed``, ``gc-stats`` (see authd_variant.py)."""
        port = port or free_port()
        ctl = self.tmp / f"c-{port}.sock"
        log = self.tmp / f"{name}.log"
        opts = [o for o in variant.split(",") if o]
        known = ("uvloop", "audit-log-off", "metrics", "gc-freeze", "gc-relaxed", "gc-stats")
        unknown = [o for o in opts if o not in known and "/" not in o]
        if unknown:
            raise SystemExit(f"bench: unknown variant option(s) {unknown}")
        args = [
            "--config",
            str(
                self.authd_config(
                    audit_log="audit-log-off" not in opts,
                    metrics="metrics" in opts,
                    legacy=any(
                        "/" in o and not (Path(o) / "localai_authd" / "limitsconfig.py").exists()
                        for o in opts
                    ),
                )
            ),
            "--listen",
            f"127.0.0.1:{port}",
            "--upstream",
            f"http://127.0.0.1:{self.upstream_port}",
            "--state-dir",
            str(self.tmp / "authd-state"),
            "--control-socket",
            str(ctl),
            "--keyring-backend",
            "file",
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "PYTHONPATH")}
        paths = [str(Path(o).resolve()) for o in opts if "/" in o]
        if "uvloop" in opts:
            paths.append(str(self._uvloop_path()))
        flags = [f"--{o}" for o in ("gc-freeze", "gc-relaxed", "gc-stats", "uvloop") if o in opts]
        if paths or flags:
            env["PYTHONPATH"] = os.pathsep.join(paths)
            cmd = [str(PRODUCT_PY), str(ROOT / "bench" / "authd_variant.py"), *flags, *args]
        else:
            cmd = [str(AUTHD), *args]
        with log.open("ab") as err:
            p = subprocess.Popen(
                _pinned(self.target_cpu, cmd), stdout=subprocess.DEVNULL, stderr=err, env=env
            )
        proc = Proc(name, p, log=log)
        self.procs.append(proc)
        wait_port(port, 30)
        t = Target(name, port, proc, variant)
        self.targets[name] = t
        return t

    def _uvloop_path(self) -> Path:
        """A directory with only the bench's uvloop in it, for the product's interpreter."""
        import uvloop

        d = self.tmp / "uvloop-only"
        if not d.exists():
            d.mkdir()
            (d / "uvloop").symlink_to(Path(uvloop.__file__).parent)
        return d

    # nginx ----------------------------------------------------------------------------------

    def nginx_config(self, port: int) -> Path:
        d = self.tmp / "nginx"
        d.mkdir(exist_ok=True)
        for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (d / sub).mkdir(exist_ok=True)
        conf = d / "nginx.conf"
        conf.write_text(
            f"""
worker_processes 1;
daemon off;
master_process on;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 16384; }}
http {{
  access_log off;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  keepalive_requests 1000000;
  upstream bench_upstream {{
    server 127.0.0.1:{self.upstream_port};
    keepalive 1024;
    keepalive_requests 1000000;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      if ($http_authorization != "Bearer {self.key}") {{ return 401; }}
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
      proxy_buffering off;
      proxy_read_timeout 600s;
      proxy_send_timeout 600s;
    }}
  }}
}}
"""
        )
        return conf

    def start_nginx(self, port: int | None = None) -> Target:
        port = port or free_port()
        conf = self.nginx_config(port)
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        base = [nginx, "-p", str(conf.parent), "-c", str(conf), "-e", str(conf.parent / "e.log")]
        subprocess.run([*base, "-t", "-q"], check=True, timeout=30)
        with (conf.parent / "stderr.log").open("ab") as err:
            p = subprocess.Popen(
                _pinned(self.target_cpu, base), stdout=subprocess.DEVNULL, stderr=err
            )
        proc = Proc("nginx", p, stop_signal=signal.SIGQUIT)
        self.procs.append(proc)
        wait_port(port)
        t = Target("nginx", port, proc)
        self.targets["nginx"] = t
        return t

    def restart(self, name: str) -> Target:
        """A fresh process on the same port (memory per stream is measured from a clean heap)."""
        old = self.targets[name]
        assert old.proc is not None
        old.proc.stop()
        self.procs.remove(old.proc)
        if name == "nginx":
            return self.start_nginx(old.port)
        return self.start_authd(old.port, name, old.variant)

    # all ----------------------------------------------------------------------------------

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            p.stop()
        self.procs.clear()
