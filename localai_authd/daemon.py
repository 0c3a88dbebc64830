"""localai-authd: process lifecycle. Config, key store, gateway, control server, systemd."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import __version__, cmdline, config, logsetup, preflight, probe
from . import reload as reloading
from .audit import Audit
from .control.context import ControlContext
from .errors import EXIT_CONFIG, EXIT_OK, EXIT_SOFTWARE, EXIT_UNAVAILABLE, AuthdError, ConfigError
from .gateway import observe
from .gateway import tls as tlsmod
from .gateway.app import Gateway
from .gateway.connections import ConnectionGuard
from .gateway.sites import Sites
from .keys.store import KeyStore
from .metrics import Metrics
from .streams import StreamRegistry
from .systemd import Notifier, watchdog, watchdog_interval
from .usage import UsageStore

log = logging.getLogger("localai_authd")


class Daemon:
    def __init__(self, cfg: config.Config, config_path: Path | None, overrides: dict[str, Any]):
        self.cfg = cfg
        self.config_path = config_path
        self.overrides = overrides
        self.notifier = Notifier()
        self.started = time.time()
        self.stop_event = asyncio.Event()
        self.hurry = asyncio.Event()  # a second SIGTERM/SIGINT: stop now, no more draining
        self._tasks: set[asyncio.Task[Any]] = set()  # keep references: the loop's are weak
        self.store: KeyStore | None = None
        self.gateway: Gateway | None = None
        self.audit: Audit | None = None
        self.streams = StreamRegistry()
        self._reload_lock = asyncio.Lock()
        self.connections = ConnectionGuard(cfg.connections)  # shared by every listener
        self.sites: Sites | None = None
        self.metrics: Metrics | None = None
        self.tls_files: reloading.Files = {}  # what the TLS files held at the last (re)load

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(t)
        t.add_done_callback(self._task_done)

    def _task_done(self, t: asyncio.Task[Any]) -> None:
        self._tasks.discard(t)
        if not t.cancelled() and t.exception() is not None:
            log.error("background task %s failed", t.get_name(), exc_info=t.exception())

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if not self.stop_event.is_set():
            self.stop_event.set()
            return
        if not self.hurry.is_set():
            assert self.gateway is not None
            log.warning(
                "%s again while draining: stopping now, ending %d request(s) in flight",
                sig.name,
                self.gateway.in_flight,
            )
            self.hurry.set()

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
        try:
            self.audit = Audit(cfg.audit_file, cfg.audit_log, cfg.audit_required)
        except OSError as e:
            log.error("cannot open the audit file %s: %s", cfg.audit_file, e)
            return EXIT_UNAVAILABLE
        self.gateway = Gateway(cfg, self.store, self.audit, self.streams)
        usage = UsageStore(cfg.state_dir / "usage.json")
        await asyncio.to_thread(usage.load)
        self.gateway.record_hooks.append(usage.record)
        usage.start()
        # Counted only when someone can read them ([metrics] needs a restart to change).
        self.metrics = observe.attach(self.gateway) if cfg.metrics.listen else None
        self.sites = Sites(self.gateway, self.connections)
        try:
            bound = await self.sites.bind(cfg)
            bound += await self._bind_metrics()
        except (OSError, AuthdError) as e:
            log.error("cannot listen: %s", getattr(e, "message", e))
            await self.sites.cleanup()
            return EXIT_UNAVAILABLE if isinstance(e, OSError) else EXIT_CONFIG
        self.tls_files = await asyncio.to_thread(reloading.read_files, cfg)
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
            await self.sites.cleanup()
            return e.exit_code if isinstance(e, AuthdError) else EXIT_UNAVAILABLE
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload()))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
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
        await self.sites.cleanup()
        await usage.stop()  # after the drain: the last requests are counted
        for t in list(self._tasks):
            t.cancel()
        await self.store.close()
        self.audit.close()
        log.info("stopped")
        return EXIT_OK

    async def _drain(self) -> None:
        """Stop accepting, let requests in flight finish for up to drain_timeout, then cut."""
        assert self.gateway is not None and self.sites is not None
        await self.sites.stop_accepting()
        gw = self.gateway
        self.notifier.status(f"stopping: {gw.in_flight} request(s) draining")
        idle = asyncio.ensure_future(gw.idle.wait())
        hurry = asyncio.ensure_future(self.hurry.wait())
        await asyncio.wait(
            (idle, hurry), timeout=self.cfg.drain_timeout, return_when="FIRST_COMPLETED"
        )
        idle.cancel()
        hurry.cancel()
        if gw.in_flight:
            why = "second stop signal" if self.hurry.is_set() else "drain timeout"
            log.warning("%s: ending %d request(s) still in flight", why, self.streams.kill_all())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gw.idle.wait(), 5)

    def _status_line(self) -> str:
        assert self.store is not None and self.gateway is not None
        c = self.store.counts()
        return f"serving; {c['active']} active keys; {self.gateway.in_flight} requests in flight"

    async def status(self) -> dict[str, Any]:
        assert self.store is not None and self.gateway is not None
        ups = await asyncio.gather(*(probe.reachable(u.url) for u in self.cfg.upstreams))
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
            "audit": {
                "file": str(self.cfg.audit_file) if self.cfg.audit_file else None,
                "writable": self.audit.writable if self.audit else None,
                "required": self.cfg.audit_required,
            },
        }

    async def _bind_metrics(self) -> list[str]:
        """The [metrics] listener, if configured; stopped and cleaned up with the others."""
        m = self.cfg.metrics
        if m.listen is None:
            return []
        assert self.metrics is not None and self.gateway is not None and self.sites is not None
        ssl_ctx = tlsmod.server_context(m.tls, "[metrics]") if m.tls is not None else None
        runner, _ = await observe.start_listener(
            self.metrics, self.gateway, m.listen.host, m.listen.port, ssl_ctx
        )
        self.sites.runners.append(runner)
        return [f"metrics {'https' if ssl_ctx else 'http'}://{m.listen}/metrics"]

    async def reload(self) -> dict[str, Any]:
        result = await self._reload()
        if self.metrics is not None:
            self.metrics.observe_reload(bool(result.get("reloaded")))
        return result

    async def _reload(self) -> dict[str, Any]:
        """SIGHUP / authctl reload: re-read and validate the whole config, plan, prepare
        every part, then commit all of them, or refuse and change nothing.

        Streams in flight are not touched: the listening sockets stay; TLS contexts are
        replaced by fresh ones for new handshakes; limits, timeouts, upstreams, audit and
        logging change for the next request; the key table is re-read.
        """
        async with self._reload_lock:
            assert self.store is not None and self.gateway is not None and self.audit is not None
            self.notifier.reloading()
            log.info("reloading configuration from %s", self.config_path or "<defaults>")
            try:
                plan, prepared = await self._plan_and_prepare()
            except ConfigError as e:
                self._reopen_audit()
                return self._refused(e.problems)
            except Exception as e:  # systemd waits for READY=1 after RELOADING=1: always answer
                log.exception("reload failed before anything was applied")
                return self._refused([f"internal error: {type(e).__name__}: {e}"])
            reloading.commit_all(prepared)
            self.cfg, self.tls_files = plan.config, plan.files
            for k in plan.restart_needed:
                log.warning("reload: %s changed; restart the daemon to apply it", k)
            log.info("reload applied: %s", ", ".join(plan.changes) or "no changes")
            answer: dict[str, Any] = {
                "reloaded": True,
                "problems": [],
                "changes": list(plan.changes),
                "restart_needed_for": list(plan.restart_needed),
            }
            try:
                await self.store.load()
            except AuthdError as e:
                log.error("reload: keeping the keys in memory; the keyring failed: %s", e.message)
                answer["keys"] = f"kept in memory: the keyring failed: {e.message}"
            self.notifier.ready(self._status_line() + "; configuration reloaded")
            return answer

    def _reopen_audit(self) -> None:
        """A refused reload still reopens the audit file at the path in force: logrotate's
        SIGHUP must not leave records going to the file it just moved aside (and will
        compress), whatever the state of the config on disk."""
        assert self.audit is not None
        try:
            self.audit.prepare(self.audit.path, self.audit.to_log, self.audit.required).commit()
        except OSError as e:
            log.error("reload: cannot reopen the audit file %s: %s", self.audit.path, e)

    async def _plan_and_prepare(self) -> tuple[reloading.Plan, list[reloading.Prepared]]:
        """The new config read, planned and every part prepared; raises ConfigError with
        every problem (nothing has changed then)."""
        try:
            new = await asyncio.to_thread(config.load, self.config_path, self.overrides)
        except ConfigError as e:
            raise ConfigError([f"{e.source}: {p}" for p in e.problems]) from None
        files = await asyncio.to_thread(reloading.read_files, self.cfg, new)
        plan = reloading.plan(self.cfg, new, files, self.tls_files)
        if plan.problems:
            raise ConfigError(list(plan.problems))
        try:
            return plan, await asyncio.to_thread(self._prepare, plan)
        except OSError as e:
            raise ConfigError(
                [f"[audit] file: cannot open {plan.config.audit_file}: {e}"]
            ) from None

    def _prepare(self, plan: reloading.Plan) -> list[reloading.Prepared]:
        """Build every part's new state (blocking: TLS files, the audit file). Raises
        ConfigError or OSError after undoing what it built."""
        assert self.gateway is not None and self.audit is not None
        cfg = plan.config
        steps: list[Callable[[], reloading.Prepared]] = []
        assert self.sites is not None
        for i, holder in self.sites.tls.items():
            tls = cfg.listen[i].tls
            assert tls is not None  # TLS on or off is a socket change: restart only
            steps.append(functools.partial(holder.prepare, tls))
        steps += [
            functools.partial(
                self.audit.prepare, cfg.audit_file, cfg.audit_log, cfg.audit_required
            ),
            functools.partial(logsetup.prepare_level, cfg.log_level),
            functools.partial(
                reloading.Prepared, functools.partial(self.gateway.apply_config, cfg)
            ),
            functools.partial(
                reloading.Prepared, functools.partial(self.connections.configure, cfg.connections)
            ),
        ]
        return reloading.prepare_all(steps)

    def _refused(self, problems: list[str]) -> dict[str, Any]:
        for p in problems:
            log.error("reload refused, nothing changed: %s", p)
        self.notifier.ready(
            f"{self._status_line()}; last reload refused, nothing changed: {problems[0]}"
        )
        return {"reloaded": False, "problems": problems}


def main(argv: list[str] | None = None) -> int:
    args = cmdline.parser().parse_args(argv)
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
    logsetup.setup(cfg.log_level)
    try:
        return cmdline.run_loop(Daemon(cfg, args.config, overrides).run())
    except Exception:
        log.exception("internal error")
        return EXIT_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
