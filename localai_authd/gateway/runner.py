"""The AppRunner of our listeners: aiohttp's, but its parser errors never echo the request,
every parser refusal is audited, and its answers name no Python or aiohttp version.

When aiohttp's HTTP parser refuses a request (a control character in a header, a folded
line, a bare LF), it answers 400 with the offending raw line in the body, and that line may
hold a credential. Our handler keeps the status, drops the echo, and reports the refusal (the
class of error and the client, never the bytes). The matching log line is scrubbed by
logscrub.install.

The seam is aiohttp's private ``_make_server`` and the class of the server it returns; a
new aiohttp could change either without an error. So :meth:`GatewayRunner.setup` checks that
the server really is ours and makes our handlers, and refuses to start otherwise: the
failure it guards against is silent (credentials echoed in 400 answers).
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_request import BaseRequest

from . import logscrub
from .errors import SERVER

ParseRefused = Callable[[str | None, BaseException], None]
# Where an app says who hears of its parser refusals (the gateway: its audit trail).
PARSE_REFUSED: web.AppKey[ParseRefused] = web.AppKey("parse_refused")


class SeamBroken(RuntimeError):
    """aiohttp did not build the quiet server: starting would echo requests in 400s."""


class _QuietRequestHandler(RequestHandler):
    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) <= queued:
            return
        err = self._messages[-1][0]
        request = self._current_request
        if isinstance(err, _ErrInfo) and request is not None and not request.content.is_eof():
            # The parser refused what came after a head it accepted (a bad chunk size in a
            # body that arrives late): aiohttp queues the refusal behind the request in
            # progress, whose body then never ends. End it with the parser's error instead.
            stop = RequestPayloadError("the parser refused the rest of the request")
            stop.__cause__ = err.exc
            request.content.set_exception(stop)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 500:
            message = f"{status} {HTTPStatus(status).phrase}"
        if isinstance(exc, HttpProcessingError):
            on_refused = getattr(self._manager, "on_parse_refused", None)
            if on_refused is not None:
                on_refused(request.remote, exc)
        resp = super().handle_error(request, status, exc, message)
        resp.headers["Server"] = SERVER
        return resp


class _QuietServer(web.Server):
    # No new state: a web.Server made by aiohttp becomes one of these by a class switch,
    # which needs the same layout. What the gateway hooks in lives on the instance.
    __slots__ = ()
    on_parse_refused: ParseRefused | None

    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """The gateway's listeners (connections.GuardedRunner adds the connection caps)."""

    __slots__ = ()

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _QuietServer  # same state; only which handler class it makes
        return server

    async def setup(self) -> None:
        logscrub.install()
        await super().setup()
        server = self.server
        if not isinstance(server, _QuietServer) or not isinstance(server(), _QuietRequestHandler):
            await self.cleanup()
            raise SeamBroken(
                "aiohttp did not build the quiet server (is aiohttp the pinned version?): "
                "refusing to serve requests whose errors would be echoed"
            )
        server.on_parse_refused = self.app.get(PARSE_REFUSED)
