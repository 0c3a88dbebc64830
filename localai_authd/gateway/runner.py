"""The gateway's AppRunner: aiohttp's, but its parser errors never echo the request.

When aiohttp's HTTP parser refuses a request (a control character in a header, a folded
line, a bare LF), it answers 400 with the offending raw line in the body, and that line may
hold a credential. Our handler keeps the status and drops the echo. (The matching log line is
scrubbed by app.install_log_scrubber.)
"""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from .errors import SERVER


class _QuietRequestHandler(RequestHandler):
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != 500:
            message = f"{status} {HTTPStatus(status).phrase}"
        resp = super().handle_error(request, status, exc, message)
        resp.headers["Server"] = SERVER
        return resp


class _QuietServer(web.Server):
    def __call__(self) -> RequestHandler:
        return _QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _QuietServer  # same state; only which handler class it makes
        return server
