"""The control socket: HTTP+JSON on a Unix socket, for root and the admin group only.

Access is checked twice, by the socket file's modes and by the peer's credentials on every
request (see :mod:`.access`).

Requests are JSON objects, size-capped and time-limited; every outcome (refusals included)
is logged and goes to the audit trail. Clients only ever see ``{"error": {"code",
"message"}}``; tracebacks stay in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..audit import ControlOutcome
from ..errors import (
    AuthdError,
    ClientGone,
    InvalidJson,
    MethodNotAllowed,
    PermissionDenied,
    RequestTimeout,
    RequestTooLarge,
    UnknownField,
)
from ..redact import redact
from .access import Peer, authorize, bind_socket, peer_of
from .context import ControlContext
from .handlers import Call, Operation, Result, check_fields, resolve

log = logging.getLogger("localai_authd.control")

_AUDIT_NAME_MAX = 100  # a refused name is recorded, but a 64 KiB one is not
# Not aiohttp's "Python/3.x aiohttp/3.y": no versions for whoever reaches the socket.
SERVER = "localai-authd"


def _error_doc(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


class _ParserRefusals(web.Server):
    """aiohttp's server, whose parser refusals (a malformed request line or header, a body
    that does not frame) are answered and audited by :meth:`ControlServer._malformed`
    instead of aiohttp's text answer, which names neither us nor the request."""

    on_error: Any = None

    def __call__(self) -> RequestHandler:
        return _ParserRefusalHandler(self, loop=self._loop, **self._kwargs)


class _ParserRefusalHandler(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        manager = self._manager
        on_error = manager.on_error if isinstance(manager, _ParserRefusals) else None
        if on_error is None or request.writer.output_size > 0:
            return super().handle_error(request, status, exc, message)
        response: web.StreamResponse = on_error(request, status, exc)
        return response


class ControlServer:
    def __init__(self, ctx: ControlContext, path: Path) -> None:
        self.ctx = ctx
        self.path = path
        self._daemon_uid = os.getuid()
        self._runner: web.ServerRunner | None = None
        self._inode: int | None = None
        # Operations in flight: kept referenced (the loop holds tasks weakly) and awaited on
        # close, because a store change is never cancelled half-way.
        self._tasks: set[asyncio.Task[Result]] = set()

    async def start(self) -> None:
        sock = bind_socket(self.path, self.ctx.admin_group)
        self._inode = os.stat(self.path).st_ino
        # No application router: every request, whatever its path (a decoded "%0A" included,
        # which aiohttp's "{tail:.*}" route never matched), reaches _handle and is audited.
        # keepalive_timeout also starts at connect (aiohttp closes a connection that has not
        # delivered a whole request head by then): that is what cuts off half a request
        # followed by silence; the body is bounded in _read_body.
        server = _ParserRefusals(
            self._handle,
            access_log=None,
            keepalive_timeout=self.ctx.request_timeout,
            tcp_keepalive=False,
            # After an early answer (413, 408, 403) the unread rest of a request is drained
            # for at most this long before the connection is closed; aiohttp's default, 10 s,
            # would hold a silent client's connection open that long.
            lingering_time=1.0,
        )
        server.on_error = self._malformed
        self._runner = web.ServerRunner(server, shutdown_timeout=self.ctx.request_timeout)
        await self._runner.setup()
        try:
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            await self.close()
            sock.close()
            raise
        log.info("control socket listening on %s", self.path)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        # Only our own socket: a successor may already have bound a new one at this path.
        with contextlib.suppress(FileNotFoundError):
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        self._inode = None

    # ---- one request ----------------------------------------------------------------------

    async def _handle(self, request: BaseRequest) -> web.Response:
        deadline = asyncio.get_running_loop().time() + self.ctx.request_timeout
        raw_path = request.rel_url.raw_path
        action, name, peer = "unknown", None, None
        headers: dict[str, str] = {}
        outcome: ControlOutcome
        try:
            peer = peer_of(request)
            with contextlib.suppress(AuthdError):
                action = resolve(request.method, raw_path)[0].action
            refusal = await asyncio.to_thread(
                authorize, peer.uid, self.ctx.admin_group, self._daemon_uid
            )
            if refusal is not None:
                raise PermissionDenied(refusal)
            op, params = resolve(request.method, raw_path)
            name = params.get("name")
            if request.rel_url.raw_query_string:
                raise UnknownField("query parameters are not accepted; send a JSON body")
            body = await self._read_body(request, deadline)
            if name is None and isinstance(body.get("name"), str):
                name = body["name"]
            check_fields(op, body)
            status, doc = await self._perform(op, Call(self.ctx, peer.uid, params, body))
            code, outcome, detail = "ok", "success", ""
        except AuthdError as e:
            status, code, outcome, detail = e.http_status, e.code, "failure", e.message
            doc = _error_doc(e.code, e.message)
            if isinstance(e, MethodNotAllowed):
                headers["Allow"] = ", ".join(e.allowed)
        except Exception:
            log.exception("control: %s %s failed", request.method, raw_path[:200])
            status, code, outcome, detail = 500, "internal_error", "failure", "internal error"
            doc = _error_doc(code, "internal error; see the daemon's log")
        self._record(request, peer, action, name, status, code, outcome, detail, doc)
        headers["Server"] = SERVER
        response = web.json_response(doc, status=status, headers=headers, dumps=_dumps)
        if status >= 400:
            # Whatever of the request is still unread is not worth reading.
            response.force_close()
        return response

    def _malformed(
        self, request: BaseRequest, status: int, exc: BaseException | None
    ) -> web.Response:
        """A request aiohttp refused before any handler ran: answered and audited here."""
        if status >= 500:
            log.error("control: request failed before its handler", exc_info=exc)
        try:
            peer: Peer | None = peer_of(request)
        except (OSError, AuthdError):
            peer = None
        code = "malformed_request" if status < 500 else "internal_error"
        message = "the request is not well-formed HTTP" if status < 500 else "internal error"
        doc = _error_doc(code, message)
        self._record(request, peer, "malformed", None, status, code, "failure", message, doc)
        response = web.json_response(doc, status=status, dumps=_dumps)
        response.headers["Server"] = SERVER
        response.force_close()
        return response

    async def _read_body(self, request: BaseRequest, deadline: float) -> dict[str, Any]:
        cap = self.ctx.max_request_bytes
        too_large = RequestTooLarge(f"the request body is larger than {cap} bytes")
        if request.content_length is not None and request.content_length > cap:
            raise too_large
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout_at(deadline):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > cap:  # chunked bodies announce no length
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError as e:
            raise RequestTimeout(
                f"the request did not arrive within {self.ctx.request_timeout:g}s"
            ) from e
        except ConnectionError as e:
            raise ClientGone("the client closed the connection before its request was whole") from e
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as e:  # RecursionError: "[[[[..." nested deep
            raise InvalidJson("the request body is not valid JSON") from e
        if not isinstance(doc, dict):
            raise InvalidJson("the request body must be a JSON object")
        return doc

    async def _perform(self, op: Operation, call: Call) -> Result:
        # Shielded: if the client leaves or the server closes, a store change still runs to
        # the end; cancelling it between the keyring write and the index swap would leave
        # the durable table and the live index disagreeing.
        task = asyncio.create_task(op.fn(call), name=f"control-{op.action}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    def _record(
        self,
        request: BaseRequest,
        peer: Peer | None,
        action: str,
        name: str | None,
        status: int,
        code: str,
        outcome: ControlOutcome,
        detail: str,
        doc: dict[str, Any],
    ) -> None:
        uid = peer.uid if peer is not None else None
        fields: dict[str, Any] = {"status": status}
        # The full credential check, not the audit trail's cheap prefix check: a refused
        # name or a message may hold a key without its prefix, and control actions are rare.
        if name is not None:
            fields["name"] = redact(name)[:_AUDIT_NAME_MAX]
        if isinstance(doc.get("kid"), str):
            fields["kid"] = doc["kid"]
        if detail:
            fields["detail"] = redact(detail)
        self.ctx.audit.control(action, uid, outcome, code, **fields)
        who = f"pid {peer.pid} uid {peer.uid}" if peer is not None else "unknown peer"
        level = logging.WARNING if code == "permission_denied" else logging.INFO
        log.log(
            level,
            "control: %s %s from %s: %d %s",
            request.method,
            request.rel_url.raw_path[:200],
            who,
            status,
            code,
        )


def _dumps(doc: Any) -> str:
    return json.dumps(doc, default=str)


async def start_control_server(ctx: ControlContext, path: Path) -> ControlServer:
    """Bind ``path`` and serve the control plane on it until :meth:`ControlServer.close`."""
    server = ControlServer(ctx, path)
    await server.start()
    return server
