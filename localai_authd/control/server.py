"""The control socket: HTTP+JSON on a Unix socket, for root and the admin group only.

Access is checked twice (PRODUCT.md, "Shape"):

1. the file: the socket is bound under ``umask 0177`` so it is never looser than 0600, not
   even for an instant (no chmod-after-bind window); only then is it handed to the admin
   group (chgrp + 0660), inside a directory we create 0750;
2. the peer: every request's connection is asked for its credentials with ``SO_PEERCRED``
   (socket(7)); root, the daemon's own uid and members of the admin group pass. Membership is
   the user's whole group list (getgrouplist(3)): SO_PEERCRED only carries the primary gid.

Requests are JSON objects, size-capped and time-limited; every outcome (refusals included)
is logged and goes to the audit trail. Clients only ever see ``{"error": {"code",
"message"}}``; tracebacks stay in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from ..audit import ControlOutcome
from ..errors import (
    AuthdError,
    ClientGone,
    ControlSocketError,
    InvalidJson,
    MethodNotAllowed,
    PermissionDenied,
    RequestTimeout,
    RequestTooLarge,
    UnknownField,
)
from .context import ControlContext
from .handlers import Call, Operation, Result, check_fields, resolve

log = logging.getLogger("localai_authd.control")

# struct ucred { pid_t pid; uid_t uid; gid_t gid; } -- socket(7), SO_PEERCRED
_UCRED = struct.Struct("3i")
_AUDIT_NAME_MAX = 100
# Not aiohttp's "Python/3.x aiohttp/3.y": no versions for whoever reaches the socket.
SERVER = "localai-authd"  # a refused name is recorded, but a 64 KiB one is not


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


def peer_of(request: web.BaseRequest) -> Peer:
    """The credentials the kernel recorded when the peer connected (not spoofable by it)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None:
        raise PermissionDenied("could not read the peer's credentials")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return Peer(*_UCRED.unpack(raw))


def authorize(uid: int, admin_group: str, daemon_uid: int) -> str | None:
    """None if ``uid`` may use the control plane, else why not (safe to show the peer)."""
    if uid in (0, daemon_uid):
        return None
    if not admin_group:
        return f"uid {uid} is not root or the daemon's own user"
    refusal = f"uid {uid} is not root or a member of group {admin_group!r}"
    try:
        gid = grp.getgrnam(admin_group).gr_gid
        user = pwd.getpwuid(uid)  # a uid without a passwd entry has no group list: refuse
    except KeyError:
        return refusal
    if gid in os.getgrouplist(user.pw_name, user.pw_gid):
        return None
    return refusal


def _admin_gid(admin_group: str) -> int | None:
    if not admin_group:
        return None
    try:
        return grp.getgrnam(admin_group).gr_gid
    except KeyError:
        return None


def _prepare_dir(parent: Path, gid: int | None) -> None:
    try:
        parent.mkdir(parents=True, mode=0o750)
    except FileExistsError:
        return  # the operator's (or systemd's RuntimeDirectory=) modes stand: never loosen
    # mkdir's mode went through the umask; say exactly what we mean. Group r-x, no more: the
    # admin group must traverse it to reach the socket.
    os.chmod(parent, 0o750)  # noqa: S103
    if gid is not None:
        try:
            os.chown(parent, -1, gid)  # the group must be able to traverse to the socket
        except PermissionError:
            log.warning(
                "cannot give %s to gid %d; only its owner can reach the socket", parent, gid
            )


def _clear_stale(path: Path) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise ControlSocketError(f"{path} exists and is not a socket; refusing to remove it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)  # nobody answers: left over from a process that died
    else:
        raise ControlSocketError(
            f"another process is listening on {path} (is localai-authd already running?)"
        )
    finally:
        probe.close()


def bind_socket(path: Path, admin_group: str) -> socket.socket:
    """A bound, not yet listening, Unix socket at ``path`` with the modes described above."""
    gid = _admin_gid(admin_group)
    _prepare_dir(path.parent, gid)
    _clear_stale(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)  # the socket file is born 0600: there is no looser instant
    try:
        sock.bind(str(path))
    except OSError as e:
        sock.close()
        raise ControlSocketError(f"cannot create the control socket {path}: {e}") from e
    finally:
        os.umask(old)
    if gid is not None:
        try:
            os.chown(path, -1, gid)
            os.chmod(path, 0o660)
        except PermissionError:
            log.warning(
                "cannot give the control socket %s to group %r (is the daemon's user a member?);"
                " it stays 0600: only root and the daemon's user can use it",
                path,
                admin_group,
            )
    elif admin_group:
        log.warning(
            "admin group %r does not exist: the control socket %s stays 0600 "
            "(only root and the daemon's user can use it)",
            admin_group,
            path,
        )
    return sock


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
        if name is not None:
            fields["name"] = name[:_AUDIT_NAME_MAX]
        if isinstance(doc.get("kid"), str):
            fields["kid"] = doc["kid"]
        if detail:
            fields["detail"] = detail
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
