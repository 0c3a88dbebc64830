"""The gateway's wiring. The order of this module's pipeline is the data flow:

request → canonical target → authenticate → route + scope → size → (100-continue)
        → body + model policy → forward (stream) → audit (exactly one record, always)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from ..audit import Audit
from ..config import Config
from ..keys.store import KeyStore
from ..redact import looks_like_credential
from ..streams import StreamRegistry
from . import headers as hdrs
from . import inspection, listing, policy, routes, target
from .admission import Admission, reserialize
from .context import CTX, Ctx, RecordHook, RequestIds, record
from .errors import Refusal, render
from .forward import forward, new_session, stream_body
from .health import OWN_PREFIX, OwnEndpoints
from .identify import CredentialRefused, authenticate
from .limits import TOKEN_PATHS, check_streams
from .parse_refusals import ParseRefusals
from .runner import PARSE_REFUSED
from .token_endpoint import exchange_token
from .tokencount import TokenMeter

log = logging.getLogger("localai_authd.gateway")
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
LISTENER: web.AppKey[int] = web.AppKey("listener", int)
# A path, not a password (S105): where a key holder trades its key for a token (README).
TOKEN_PATH = "/localai-authd/token"  # noqa: S105


class Gateway:
    def __init__(self, cfg: Config, store: KeyStore, audit: Audit, streams: StreamRegistry) -> None:
        self.cfg = cfg
        self.store = store
        self.audit = audit
        self.streams = streams
        self._ids = RequestIds()
        # Requests aiohttp's parser refused never reach handle(): the runner reports them.
        self.parse_refusals = ParseRefusals(audit.write, self._ids.next)
        self._routes: dict[tuple[str, str], routes.Route] = {}
        self._session: aiohttp.ClientSession | None = None
        self._apps_running = 0
        self.admission = Admission(cfg.limits)
        self.record_hooks: list[RecordHook] = []
        self.in_flight = 0
        self.idle = asyncio.Event()  # set while no request is in flight (for the drain)
        self.idle.set()
        self.own = OwnEndpoints(self)  # health, ready, forward-auth: before authentication

    # ---- lifecycle ---------------------------------------------------------------------------

    def make_app(self, listener: int = 0) -> web.Application:
        """The app for ``cfg.listen[listener]``: one per listener, so each request knows
        its listener's rules (TLS, client certificates, Basic)."""

        # Every request goes through our pipeline, even one the router cannot place
        # (authority-form CONNECT targets): it gets our 400 and its audit record.
        @web.middleware
        async def everything(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self.handle(request)

        app = web.Application(client_max_size=self.cfg.max_body_bytes, middlewares=[everything])
        app[GATEWAY] = self
        app[PARSE_REFUSED] = self.parse_refusals.refused
        app[LISTENER] = listener
        # [\s\S], not ".": a decoded %0a must reach our checks (and its 400), not the router.
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle, expect_handler=self.expect)
        app.on_startup.append(self._on_startup)
        app.on_cleanup.append(self._on_cleanup)
        return app

    async def _on_startup(self, app: web.Application) -> None:
        # One ClientSession for all listeners and the daemon's lifetime.
        if self._session is None:
            self._session = new_session()
        self._apps_running += 1

    async def _on_cleanup(self, app: web.Application) -> None:
        self._apps_running -= 1
        if self._apps_running == 0:
            self.parse_refusals.flush()
        if self._apps_running == 0 and self._session is not None:
            await self._session.close()
            self._session = None

    def apply_config(self, cfg: Config) -> None:
        """SIGHUP: new limits, timeouts and upstreams apply to the next request."""
        self.cfg = cfg
        self.admission.configure(cfg.limits)

    # ---- the pipeline ------------------------------------------------------------------------

    def _prelude(self, request: web.Request, ctx: Ctx) -> None:
        """Everything decidable from the request head. Raises Refusal."""
        if request.version not in ((1, 0), (1, 1)):
            raise Refusal(
                505, "http_version", "only HTTP/1.0 and HTTP/1.1 are served", "bad_request"
            )
        tgt = target.canonicalize(request.raw_path, request.method)
        ctx.dialect = tgt.dialect
        ctx.path = tgt.path
        if self.audit.refusing:  # [audit] required: nothing is served unaudited
            raise Refusal(
                503, "audit_unavailable", "the audit trail cannot be written", "unavailable"
            )
        h = request.headers
        ctx.client_headers = hdrs.from_client(h.items(), h.getall("Connection", ()))
        if looks_like_credential(hdrs.credential_text(ctx.client_headers, h.get("Host"))):
            raise Refusal(
                400,
                "credential_in_header",
                "a credential is accepted only in the Authorization or x-api-key header",
                "bad_request",
            )
        listener = self.cfg.listen[min(request.app[LISTENER], len(self.cfg.listen) - 1)]
        ctx.principal = self.admission.authenticate(
            request.remote, lambda: authenticate(request, listener, self.cfg, self.store)
        )
        ctx.identity = ctx.principal.identity
        if tgt.path == TOKEN_PATH:
            if request.method != "POST":
                raise Refusal(405, "method_not_allowed", f"use POST on {TOKEN_PATH}")
            if not self.cfg.tokens.exchange:
                raise Refusal(403, "token_exchange_off", "token exchange is turned off here")
            ctx.special = "token"
            return
        prefixes = tuple(u.prefix for u in self.cfg.upstreams)
        picked = routes.select_upstream(tgt.path, prefixes)
        if picked is None:
            raise Refusal(404, "route_not_allowed", f"{tgt.path} is not served here")
        ctx.upstream, upstream_path = picked
        ctx.route = self._route(request.method, upstream_path)
        decision = policy.decide_route(ctx.identity.scopes, ctx.route)
        if not decision.allowed:
            raise Refusal(
                403,
                decision.reason,
                f"key {ctx.identity.name!r} may not use {upstream_path} ({decision.reason})",
            )
        inspection.check_head(request.method, request.body_exists)
        if ctx.route.model_from == "path":
            ctx.models = policy.model_in_path(ctx.route, upstream_path)
        ctx.forward_target = target.encode(upstream_path, tgt.query)
        limit = self.cfg.max_upload_bytes if ctx.route.upload else self.cfg.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Refusal(
                413, "body_too_large", f"request body is over {limit} bytes", "bad_request"
            )

    async def _admit(self, ctx: Ctx) -> None:
        """The key's limits (Refusal 429 over one), once per request."""
        if ctx.limits is None and ctx.identity is not None and not ctx.special:
            kid = ctx.identity.kid
            ctx.limits = await self.admission.admit(ctx.identity, self.streams.count(kid))

    def _route(self, method: str, path: str) -> routes.Route:
        """routes.match, remembered: it scans the whole allow-list (bench/: ~2% of the CPU of
        a small request). Refusals raise and are not kept; the size is bounded (paths come
        from clients)."""
        route = self._routes.get((method, path))
        if route is None:
            route = routes.match(method, path)
            if len(self._routes) >= 1024:
                self._routes.clear()
            self._routes[(method, path)] = route
        return route

    async def expect(self, request: web.Request) -> web.StreamResponse | None:
        """Authenticate before inviting a body (aiohttp's default answers 100 to anyone)."""
        ctx = self._ctx(request)
        try:
            self._prelude(request, ctx)
            await self._admit(ctx)
        except Refusal as r:
            return self._refuse(request, ctx, r)
        ctx.expect_done = True
        if request.headers.get("Expect", "").lower() != "100-continue":
            return self._refuse(
                request,
                ctx,
                Refusal(
                    417,
                    "expectation_failed",
                    "only Expect: 100-continue is understood",
                    "bad_request",
                ),
            )
        if request.version == (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the response proper has not started
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        ctx = self._ctx(request)
        if request.raw_path.startswith(OWN_PREFIX) and not ctx.expect_done:
            own = await self.own.respond(request, ctx, request.app[LISTENER])
            if own is not None:
                if ctx.special:  # forward-auth decisions are audited; health probes are not
                    self._audit(request, ctx)
                return own
        task = asyncio.current_task()
        kid = None
        try:
            if not ctx.expect_done:
                self._prelude(request, ctx)
            if ctx.special == "token":
                assert ctx.principal is not None
                tresp = await exchange_token(request, ctx.principal, self.store, self.cfg)
                ctx.out.status, ctx.out.reason = tresp.status, "token_issued"
                ctx.out.bytes_out = len(tresp.body) if isinstance(tresp.body, bytes) else 0
                return tresp
            assert ctx.identity is not None and ctx.route is not None
            await self._admit(ctx)
            if ctx.limits is not None:  # again, with no await before streams.add
                check_streams(ctx.limits, self.streams.count(ctx.identity.kid))
            kid = ctx.identity.kid  # from here on, the finally below undoes what follows
            if task is not None:
                self.streams.add(kid, task)
            self.in_flight += 1
            self.idle.clear()
            body = await self._body(request, ctx)
            inspection.decide_models(ctx.identity, ctx.route, ctx.models, ctx.doc)
            if isinstance(body, bytes) and ctx.doc is not None and ctx.limits is not None:
                capped = self.admission.cap(ctx.doc, ctx.limits)
                if capped is not None:  # forward exactly what was checked
                    ctx.doc, body = capped, reserialize(capped)
            if ctx.route.pattern in TOKEN_PATHS:
                ctx.out.meter = TokenMeter()
            assert self._session is not None
            up = self.cfg.upstreams[ctx.upstream]
            fwd_headers = hdrs.to_upstream(
                ctx.client_headers,
                upstream_host=up.host_header,
                client_ip=request.remote or "",
                proto="https" if request.secure else "http",
                original_host=request.headers.get("Host"),
            )
            if ctx.doc is not None:  # the upstream reads the body as the JSON we read
                fwd_headers = hdrs.as_json(fwd_headers)
            if ctx.out.meter is not None:  # usage is read from the answer: plain text only
                fwd_headers = listing.identity_encoding(fwd_headers)
            fwd_headers.append(("X-Request-Id", ctx.request_id))
            if up.key_name:
                # The upstream's own key (vLLM --api-key), never the client's credentials.
                up_key = self.store.upstream_key(up.key_name)
                if up_key is None:
                    raise Refusal(
                        502,
                        "upstream_key_missing",
                        f"the upstream's own key {up.key_name!r} is not set "
                        "(authctl upstream-key set NAME)",
                        "upstream_error",
                    )
                fwd_headers.append(("Authorization", f"Bearer {up_key}"))
            # HEAD too: passed on, it states the unfiltered list's length (Go's net/http)
            if ctx.route.model_from == "list" and ctx.identity.models:
                return await listing.answer(
                    self._session,
                    up,
                    ctx.forward_target,
                    fwd_headers,
                    ctx.route,
                    ctx.identity,
                    ctx.out,
                )
            resp = await forward(
                self._session, request, up, ctx.forward_target, fwd_headers, body, ctx.out
            )
            if ctx.out.outcome == "ok" and ctx.out.status >= 400:
                ctx.out.outcome, ctx.out.reason = "upstream_status", f"upstream_{ctx.out.status}"
            return resp
        except Refusal as r:
            return self._refuse(request, ctx, r)
        except Exception:  # a fault of ours: aiohttp answers 500, and so does the record
            ctx.out.status, ctx.out.outcome, ctx.out.reason = 500, "internal_error", "internal"
            raise
        except asyncio.CancelledError:
            killed = task is not None and task in self.streams.killed
            ctx.out.outcome = "killed" if killed else "client_disconnected"
            ctx.out.reason = "killed" if killed else "client_went_away"
            if killed and request.transport is not None:
                request.transport.close()  # the client sees its stream end as an error
            raise
        finally:
            if kid is not None and task is not None:
                self.streams.discard(kid, task)
                self.in_flight -= 1
                if not self.in_flight:
                    self.idle.set()
            meter = ctx.out.meter
            if meter is not None and kid is not None and 200 <= ctx.out.status < 400:
                ctx.tokens = self.admission.charge(kid, ctx.limits, meter, ctx.bytes_in)
            self._audit(request, ctx)

    async def _body(self, request: web.Request, ctx: Ctx) -> bytes | AsyncIterator[bytes] | None:
        assert ctx.route is not None
        inspection.check_encoding(ctx.route, request.headers)
        if not request.body_exists:
            if ctx.route.model_from == "body":
                ctx.doc, ctx.models = inspection.inspect(ctx.route, b"")
            return None
        if ctx.route.upload:
            return stream_body(request.content, self.cfg.max_upload_bytes)
        limit = self.cfg.max_body_bytes
        content = request.content
        chunks: list[bytes] = []
        try:
            if content.is_eof() and content.exception() is None:
                # All of it is here (a small body arrives with its head): no async iteration.
                chunks.append(content.read_nowait())
                ctx.bytes_in = len(chunks[0])
            else:
                async for chunk in content.iter_any():
                    ctx.bytes_in += len(chunk)
                    if ctx.bytes_in > limit:
                        break
                    chunks.append(chunk)
        except RequestPayloadError as e:  # the parser refused the body's framing mid-way
            reason = f"http_parse_error:{type(e.__cause__ or e).__name__}"  # as a head's
            raise Refusal(400, reason, "the request body is malformed", "bad_request") from None
        if ctx.bytes_in > limit:
            raise Refusal(
                413, "body_too_large", f"request body is over {limit} bytes", "bad_request"
            )
        body = b"".join(chunks)
        if ctx.route.model_from == "body":
            ctx.doc, ctx.models = inspection.inspect(ctx.route, body)
        return body

    # ---- edges -------------------------------------------------------------------------------

    def _ctx(self, request: web.Request) -> Ctx:
        ctx = request.get(CTX)
        if ctx is None:
            ctx = Ctx(request_id=self._ids.next(), started=time.monotonic())
            request[CTX] = ctx
        return ctx

    def _refuse(self, request: web.Request, ctx: Ctx, r: Refusal) -> web.Response:
        ctx.out.status, ctx.out.outcome, ctx.out.reason = r.status, r.outcome, r.reason
        if isinstance(r, CredentialRefused):
            ctx.presented_kid = r.key_id
        resp = render(r, ctx.dialect, ctx.request_id)
        self._audit(request, ctx)
        return resp

    def _audit(self, request: web.Request, ctx: Ctx) -> None:
        if ctx.audited:
            return
        ctx.audited = True
        rec = record(request, ctx)
        self.audit.write(rec)
        for hook in self.record_hooks:
            try:
                hook(rec, ctx)
            except Exception:  # a reader's bug must not fail the request
                log.exception("an audit record hook failed")
