"""The gateway's listening sockets: one aiohttp runner per listener (so each request knows
its listener's rules), TCP sites or systemd socket activation, and each TLS listener's
contexts (gateway/tls.py: replaced, never reloaded in place)."""

from __future__ import annotations

import ipaddress

from aiohttp import web

from ..config import Config
from ..errors import ConfigError
from ..systemd import listen_fds
from . import tls as tlsmod
from .app import Gateway
from .connections import ConnectionGuard, GuardedRunner


class Sites:
    def __init__(self, gateway: Gateway, connections: ConnectionGuard) -> None:
        self.gateway = gateway
        self.connections = connections  # caps shared by every listener
        self.runners: list[web.AppRunner] = []
        self.tls: dict[int, tlsmod.ListenerTLS] = {}  # listener index -> its TLS contexts

    def _runner(self, index: int) -> web.AppRunner:
        runner = GuardedRunner(
            self.gateway.make_app(index),
            self.connections,
            handler_cancellation=True,  # a client that goes away cancels the upstream request
            access_log=None,  # the audit trail is the access log
            shutdown_timeout=5,  # the daemon's own drain has run by then
        )
        self.runners.append(runner)
        return runner

    async def bind(self, cfg: Config) -> list[str]:
        """Listen as ``cfg`` says (or on the sockets systemd passed); what was bound, in words."""
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
        for i, lst in enumerate(cfg.listen):
            runner = self._runner(i)
            await runner.setup()
            ssl_ctx = None
            if lst.tls is not None:
                self.tls[i] = tlsmod.ListenerTLS(lst.tls, f"listener {lst.address}")
                ssl_ctx = self.tls[i].listening
            site = web.TCPSite(
                runner, lst.host, lst.port, ssl_context=ssl_ctx, reuse_address=True, backlog=1024
            )
            await site.start()
            bound.append(str(lst))
        return bound

    async def stop_accepting(self) -> None:
        for runner in self.runners:
            for site in list(runner.sites):
                await site.stop()

    async def cleanup(self) -> None:
        for runner in self.runners:
            await runner.cleanup()
        self.runners.clear()
