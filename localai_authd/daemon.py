"""localai-authd: process lifecycle. Config, key store, gateway, control server, systemd."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import logging
import os
import signal
import ssl
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from aiohttp import web

from . import __version__, config, preflight
from .audit import Audit
from .control.context import ControlContext
from .errors import EXIT_CONFIG, EXIT_OK, EXIT_SOFTWARE, EXIT_UNAVAILABLE, AuthdError, ConfigError
from .gateway import observe
from .gateway import tls as tlsmod
from .gateway.app import Gateway, install_log_scrubber
from .gateway.connections import ConnectionGuard, GuardedRunner
from .keys.store import KeyStore
from .metrics import Metrics
from .streams import StreamRegistry
from .systemd import Notifier, listen_fds, watchdog, watchdog_interval
from .usage import UsageStore

log = logging.getLogger("localai_authd")
# Changing these needs a restart: the sockets and the keyring are opened once.
_RESTART_ONLY = (
    "listen",
    "control_socket",
    "state_dir",
    "keyring_backend",
    "keyring_credential",
    "admin_group",
    "metrics",
)


class Daemon:
    def __init__(self, cfg: config.Config, config_path: Path | None, overrides: dict[str, Any]):
        self.cfg = cfg
        self.config_path = config_path
        self.overrides = overrides
        self.notifier = Notifier()
        self.started = time.time()
        self.stop_event = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()  # keep references: the loop's are weak
        self.store: KeyStore | None = None
        self.gateway: Gateway | None = None
        self.metrics: Metrics | None = None
        self.audit: Audit | None = None
        self.streams = StreamRegistry()
        self._reload_lock = asyncio.Lock()
        self.runners: list[web.AppRunner] = []
        self.connections = ConnectionGuard(cfg.connections)  # shared by every listener
        self.tls_contexts: dict[int, ssl.SSLContext] = {}

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    async def run(self) -> int:
        cfg = self.cfg
        self.notifier.status("opening the keyring")
        from .keys.vault import open_vault  # the only module that imports keyring

        try:
            vault = await asyncio.to_thread(
                open_vault, cfg.keyring_backend, cfg.state_dir, cfg.keyring_credential
            )
            self.store = KeyStore(vault)
            await self.store.load()
        except AuthdError as e:
            # Fail closed: no keyring, no service.
            log.error("cannot open the keyring: %s", e.message)
            return e.exit_code
        self.audit = Audit(cfg.audit_file, cfg.audit_log)
        self.gateway = Gateway(cfg, self.store, self.audit, self.streams)
        usage = UsageStore(cfg.state_dir / "usage.json")
        await asyncio.to_thread(usage.load)
        self.gateway.record_hooks.append(usage.record)
        usage.start()
        # Counted only when someone can read them ([metrics] needs a restart to change).
        self.metrics = observe.attach(self.gateway) if cfg.metrics.listen else None
        try:
            bound = await self._bind()
            bound += await self._bind_metrics()
        except (OSError, AuthdError) as e:
            log.error("cannot listen: %s", getattr(e, "message", e))
            await self._cleanup_runners()
            return EXIT_UNAVAILABLE if isinstance(e, OSError) else EXIT_CONFIG
        from .control.server import start_control_server

        ctx = ControlContext(
            store=self.store,
            streams=self.streams,
            audit=self.audit,
            status=self.status,
            reload=self.reload,
            admin_group=cfg.admin_group,
            tokens=lambda: self.cfg.tokens,
            max_request_bytes=cfg.control_max_request_bytes,
            request_timeout=cfg.control_request_timeout,
            usage=usage,
        )
        try:
            control = await start_control_server(ctx, cfg.control_socket)
        except (OSError, AuthdError) as e:
            log.error(
                "cannot open the control socket %s: %s",
                cfg.control_socket,
                getattr(e, "message", e),
            )
            await self._cleanup_runners()
            return e.exit_code if isinstance(e, AuthdError) else EXIT_UNAVAILABLE
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        loop.add_signal_handler(signal.SIGTERM, self.stop_event.set)
        loop.add_signal_handler(signal.SIGINT, self.stop_event.set)
        counts = self.store.counts()
        log.info(
            "localai-authd %s serving on %s → %s; keyring %s; %d active keys; control %s",
            __version__,
            ", ".join(bound),
            ", ".join(f"{u.prefix or '/'} {u.url}" for u in cfg.upstreams),
            self.store.backend_name,
            counts["active"],
            cfg.control_socket,
        )
        if counts["total"] == 0:
            log.info(
                "no keys yet: create one with  authctl --socket %s create NAME", cfg.control_socket
            )
        # What was built at start lives until exit: keep the collector from walking it
        # again (bench/: a full collection paused the loop 10-14 ms; 0.9 ms frozen).
        gc.collect()
        gc.freeze()
        log.info("event loop: %s", type(asyncio.get_running_loop()).__module__.split(".")[0])
        self.notifier.ready(self._status_line())
        interval = watchdog_interval()
        if interval:
            self._spawn(watchdog(self.notifier, interval))
        await self.stop_event.wait()

        self.notifier.stopping()
        log.info(
            "stopping: no new connections; draining %d request(s) for up to %gs",
            self.gateway.in_flight,
            self.cfg.drain_timeout,
        )
        await control.close()
        await self._drain()
        await self._cleanup_runners()
        await usage.stop()  # after the drain: the last requests are counted
        for t in list(self._tasks):
            t.cancel()
        await self.store.close()
        self.audit.close()
        log.info("stopped")
        return EXIT_OK

    async def _drain(self) -> None:
        """Stop accepting, let requests in flight finish for up to drain_timeout, then cut."""
        assert self.gateway is not None
        for runner in self.runners:
            for site in list(runner.sites):
                await site.stop()
        gw = self.gateway
        self.notifier.status(f"stopping: {gw.in_flight} request(s) draining")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gw.idle.wait(), self.cfg.drain_timeout)
        if gw.in_flight:
            log.warning(
                "drain timeout: ending %d request(s) still in flight", self.streams.kill_all()
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gw.idle.wait(), 5)

    async def _cleanup_runners(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()

    def _runner(self, index: int) -> web.AppRunner:
        assert self.gateway is not None
        runner = GuardedRunner(
            self.gateway.make_app(index),
            self.connections,
            handler_cancellation=True,  # a client that goes away cancels the upstream request
            access_log=None,  # the audit trail is the access log
            shutdown_timeout=5,  # our own drain (_drain) has run by then
        )
        self.runners.append(runner)
        return runner

    async def _bind(self) -> list[str]:
        activated = listen_fds()
        bound: list[str] = []
        if activated:
            # Socket activation: the sockets come from a .socket unit and follow the rules
            # of the first listener; they must be loopback (no TLS on activated sockets).
            runner = self._runner(0)
            await runner.setup()
            for s in activated:
                host = s.getsockname()[0]
                if not ipaddress.ip_address(host).is_loopback:
                    raise ConfigError(
                        [
                            f"socket-activated listener {host} is not loopback: "
                            "a listener beyond loopback needs TLS"
                        ],
                        "LISTEN_FDS",
                    )
                site: web.BaseSite = web.SockSite(runner, s)
                await site.start()
                bound.append(f"{site.name} (socket activation)")
            return bound
        for i, lst in enumerate(self.cfg.listen):
            runner = self._runner(i)
            await runner.setup()
            ssl_ctx = None
            if lst.tls is not None:
                ssl_ctx = tlsmod.server_context(lst.tls, f"listener {lst.address}")
                self.tls_contexts[i] = ssl_ctx
            site = web.TCPSite(
                runner, lst.host, lst.port, ssl_context=ssl_ctx, reuse_address=True, backlog=1024
            )
            await site.start()
            bound.append(str(lst))
        return bound

    async def _bind_metrics(self) -> list[str]:
        """The [metrics] listener, if configured; stopped and cleaned up with the others."""
        m = self.cfg.metrics
        if m.listen is None:
            return []
        assert self.metrics is not None and self.gateway is not None
        ssl_ctx = tlsmod.server_context(m.tls, "[metrics]") if m.tls is not None else None
        runner, _ = await observe.start_listener(
            self.metrics, self.gateway, m.listen.host, m.listen.port, ssl_ctx
        )
        self.runners.append(runner)
        return [f"metrics {'https' if ssl_ctx else 'http'}://{m.listen}/metrics"]

    def _status_line(self) -> str:
        assert self.store is not None and self.gateway is not None
        c = self.store.counts()
        return f"serving; {c['active']} active keys; {self.gateway.in_flight} requests in flight"

    def _reload_tls(self, new: config.Config) -> None:
        """Re-read certificates, keys, CAs and CRLs into the live contexts (new handshakes
        use them; open connections keep theirs). All or nothing: check first, then apply."""
        for i in self.tls_contexts:
            lst = new.listen[i]
            assert lst.tls is not None
            tlsmod.server_context(lst.tls, f"listener {lst.address}")  # validates, throwaway
        for i, ctx in self.tls_contexts.items():
            tls = new.listen[i].tls
            assert tls is not None
            tlsmod.reload(ctx, tls, f"listener {new.listen[i].address}")
            ctx.verify_mode = tlsmod.MODES[tls.client_cert]

    async def status(self) -> dict[str, Any]:
        assert self.store is not None and self.gateway is not None
        ups = await asyncio.gather(*(_probe(u.url) for u in self.cfg.upstreams))
        return {
            "version": __version__,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "config": self.cfg.source,
            "listen": [str(x) for x in self.cfg.listen],
            "upstreams": [
                {"url": u.url, "prefix": u.prefix or "/", **r}
                for u, r in zip(self.cfg.upstreams, ups, strict=True)
            ],
            "keyring_backend": self.store.backend_name,
            "keys": self.store.counts(),
            "requests_in_flight": self.gateway.in_flight,
        }

    async def reload(self) -> dict[str, Any]:
        result = await self._reload()
        if self.metrics is not None:
            self.metrics.observe_reload(bool(result.get("reloaded")))
        return result

    async def _reload(self) -> dict[str, Any]:
        """SIGHUP / authctl reload: re-read and validate the whole config; apply only if valid.

        Streams in flight are not touched: the listeners stay, only limits, timeouts,
        upstreams, audit and logging change (and the key table is re-read).
        """
        async with self._reload_lock:
            assert self.store is not None and self.gateway is not None and self.audit is not None
            self.notifier.reloading()
            log.info("reloading configuration from %s", self.config_path or "<defaults>")
            try:
                new = await asyncio.to_thread(config.load, self.config_path, self.overrides)
            except ConfigError as e:
                for p in e.problems:
                    log.error("reload refused: %s: %s", e.source, p)
                self.notifier.ready(self._status_line() + "; last reload refused (see log)")
                return {"reloaded": False, "problems": e.problems}
            kept = [k for k in _RESTART_ONLY if getattr(new, k) != getattr(self.cfg, k)]
            if "listen" in kept and _sockets_of(new) == _sockets_of(self.cfg):
                kept.remove("listen")  # same sockets: TLS files and listener rules apply now
            if "listen" not in kept:
                try:
                    self._reload_tls(new)
                except ConfigError as e:
                    for p in e.problems:
                        log.error("reload refused: %s", p)
                    self.notifier.ready(self._status_line() + "; last reload refused (see log)")
                    return {"reloaded": False, "problems": e.problems}
            for k in kept:
                log.warning("reload: %s changed; restart the daemon to apply it", k)
            new = dataclasses.replace(new, **{k: getattr(self.cfg, k) for k in kept})
            self.cfg = new
            self.gateway.apply_config(new)
            self.connections.configure(new.connections)
            self.audit.to_log = new.audit_log
            if self.audit.path != new.audit_file:
                self.audit.path = new.audit_file
            self.audit.reopen()
            logging.getLogger().setLevel(new.log_level.upper())
            try:
                await self.store.load()
            except AuthdError as e:
                log.error("reload: keeping the keys in memory; the keyring failed: %s", e.message)
            self.notifier.ready(self._status_line())
            return {"reloaded": True, "problems": [], "restart_needed_for": kept}


def _sockets_of(cfg: config.Config) -> list[tuple[str, bool]]:
    return [(str(lst.address), lst.tls is not None) for lst in cfg.listen]


async def _probe(url: str) -> dict[str, Any]:
    from urllib.parse import urlsplit

    u = urlsplit(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        async with asyncio.timeout(2):
            _, w = await asyncio.open_connection(u.hostname, port)
        w.close()
        with contextlib.suppress(OSError):
            await w.wait_closed()
        return {"reachable": True}
    except (OSError, TimeoutError) as e:
        return {"reachable": False, "detail": str(e) or type(e).__name__}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="localai-authd",
        description="Authenticating, streaming reverse proxy for local AI servers.",
        epilog="Exit codes: 0 ok, 69 keyring or socket unavailable, 70 internal error, "
        "78 invalid configuration. See localai-authd(8).",
    )
    p.add_argument("--config", type=Path, help="TOML config file (default: built-in defaults)")
    p.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration, print every problem, and exit",
    )
    p.add_argument(
        "--listen",
        action="append",
        metavar="HOST:PORT",
        help="listen address (repeatable; replaces [server] listen)",
    )
    p.add_argument("--upstream", metavar="URL", help="upstream server (replaces [[upstream]])")
    p.add_argument("--state-dir", metavar="DIR", help="state directory")
    p.add_argument("--control-socket", metavar="PATH", help="control socket path")
    p.add_argument(
        "--keyring-backend", metavar="NAME", help='"auto", "file", or a keyring backend class'
    )
    p.add_argument("--version", action="version", version=f"localai-authd {__version__}")
    return p


def _setup_logging(level: str) -> None:
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr)
    install_log_scrubber()


def _run_loop(main: Coroutine[Any, Any, int]) -> int:
    """uvloop where it is installed (a pinned dependency): bench/README.md measured it
    cheaper per request and steadier between chunks than asyncio's own loop."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - only without the pinned dependency set
        return asyncio.run(main)
    return uvloop.run(main)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        "listen": args.listen,
        "upstream": args.upstream,
        "state_dir": args.state_dir,
        "control_socket": args.control_socket,
        "keyring_backend": args.keyring_backend,
    }
    try:
        cfg = config.load(args.config, overrides)
    except ConfigError as e:
        preflight.print_config_error(e)
        return EXIT_CONFIG
    if args.check_config:
        return preflight.check(cfg)
    _setup_logging(cfg.log_level)
    try:
        return _run_loop(Daemon(cfg, args.config, overrides).run())
    except Exception:
        log.exception("internal error")
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
