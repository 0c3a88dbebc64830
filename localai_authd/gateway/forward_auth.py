"""Forward-auth: ``/localai-authd/verify`` for a proxy that already fronts the upstream.

nginx ``auth_request``, Caddy ``forward_auth`` and Traefik ``ForwardAuth`` send us the
client's headers and name the original request in ``X-Original-URI``/``X-Original-Method``
(nginx, as its documentation configures it) or ``X-Forwarded-Uri``/``X-Forwarded-Method``
(Caddy, Traefik). The same decisions as the full proxy apply to that original request, in
the same order and with the same pure functions: canonical target (target.py), credentials
(identify.py), upstream prefix and allow-listed route (routes.py), scope (policy.py).

The answer is 200 (with the identity in ``X-Authd-Key``, ``X-Authd-Key-Id`` and
``X-Authd-Scopes`` for the proxy to pass on), 401 (no or bad credentials, with the
``WWW-Authenticate`` challenge) or 403 (everything else refused). nginx treats any other
status as an error of its own (500 to the client), so none is ever sent.

What cannot be checked here: the body. A key limited to some models is refused on every
route that names a model (``model_policy_needs_proxy``): allowing it would let it use any
model. Token counting and model-listing filters likewise need the full proxy.
"""

from __future__ import annotations

import logging
import re
from typing import Protocol

from aiohttp import web

from ..config import Config
from ..errors import AuthdError
from ..keys.model import Identity
from ..keys.store import KeyStore
from . import policy, routes, target
from .admission import Admission
from .errors import BadTarget, Dialect, Refusal, RouteNotAllowed, render
from .forward import Outcome
from .identify import CredentialRefused, Principal, authenticate


class Gateway(Protocol):
    """What forward-auth reads of the gateway (app.Gateway; not imported: app imports us)."""

    cfg: Config
    store: KeyStore
    admission: Admission


class Ctx(Protocol):
    """The fields of app.Ctx that forward-auth fills in for the audit record."""

    request_id: str
    dialect: Dialect
    path: str
    method: str
    principal: Principal | None
    identity: Identity | None
    route: routes.Route | None
    upstream: int
    out: Outcome
    special: str
    presented_kid: str | None


log = logging.getLogger("localai_authd.gateway")
VERIFY_PATH = "/localai-authd/verify"
# RFC 9110 §9: a method is a token; the ones routes name are upper-case letters.
_METHOD = re.compile(r"[A-Z]{1,16}")


def _one(request: web.Request, names: tuple[str, ...], what: str) -> str | None:
    """The single value the proxy gave under any of ``names``; two that differ are refused."""
    values = {v for n in names for v in request.headers.getall(n, ())}
    if len(values) > 1:
        raise Refusal(403, f"original_{what}_ambiguous", f"conflicting original {what} headers")
    return values.pop() if values else None


def original(request: web.Request) -> tuple[str, str]:
    """(method, raw request target) of the request the proxy asks about."""
    uri = _one(request, ("X-Original-URI", "X-Forwarded-Uri"), "uri")
    if uri is None:
        raise Refusal(
            403,
            "original_uri_missing",
            "forward-auth needs the original request target in X-Original-URI or X-Forwarded-Uri",
        )
    # nginx's auth_request subrequest keeps the client's method; Caddy and Traefik name it.
    method = _one(request, ("X-Original-Method", "X-Forwarded-Method"), "method")
    method = request.method if method is None else method
    if not _METHOD.fullmatch(method):
        raise Refusal(403, "original_method_invalid", "the original method is not a method")
    return method, uri


def decide(gw: Gateway, request: web.Request, ctx: Ctx, listener_index: int) -> None:
    """Fill ``ctx`` (identity, route) for the original request; raise Refusal to deny."""
    method, uri = original(request)
    ctx.method = method
    try:
        tgt = target.canonicalize(uri, method)
    except BadTarget as e:
        raise Refusal(403, e.reason, e.message) from None
    ctx.dialect, ctx.path = tgt.dialect, tgt.path
    cfg = gw.cfg
    listener = cfg.listen[min(listener_index, len(cfg.listen) - 1)]
    # The proxy's throttle for failed credentials: this door is open to the same clients.
    ctx.principal = gw.admission.authenticate(
        request.remote, lambda: authenticate(request, listener, cfg, gw.store)
    )
    ident = ctx.identity = ctx.principal.identity
    picked = routes.select_upstream(tgt.path, tuple(u.prefix for u in cfg.upstreams))
    if picked is None:
        raise Refusal(403, "route_not_allowed", f"{tgt.path} is not served here")
    ctx.upstream, upstream_path = picked
    try:
        ctx.route = routes.match(method, upstream_path)
    except RouteNotAllowed as e:
        raise Refusal(403, e.reason, e.message) from None
    decision = policy.decide_route(ident.scopes, ctx.route)
    if not decision.allowed:
        raise Refusal(
            403,
            decision.reason,
            f"key {ident.name!r} may not use {upstream_path} ({decision.reason})",
        )
    if ctx.route.model_from and ident.models:
        raise Refusal(
            403,
            "model_policy_needs_proxy",
            f"key {ident.name!r} is limited to some models, which forward-auth cannot check "
            "(it never sees the body, nor a model list to filter): send it through "
            "localai-authd as a proxy",
        )


async def verify(
    gw: Gateway, request: web.Request, ctx: Ctx, listener_index: int
) -> web.StreamResponse:
    try:
        decide(gw, request, ctx, listener_index)
        assert ctx.identity is not None
        # The key's request rate (and spent token budgets) count here as at the proxy.
        await gw.admission.admit(ctx.identity, 0)
    except Refusal as r:
        return _deny(ctx, r)
    except AuthdError as e:  # could not decide (keyring): closed, and said in the journal
        log.error("forward-auth: cannot decide: %s", e.message)
        return _deny(ctx, Refusal(403, e.code, "the gateway cannot decide right now"))
    assert ctx.identity is not None
    ctx.out.status, ctx.out.outcome, ctx.out.reason = 200, "ok", "forward_auth_allowed"
    return web.Response(
        status=200,
        headers={
            "X-Authd-Key": ctx.identity.name,
            "X-Authd-Key-Id": ctx.identity.kid,
            "X-Authd-Scopes": ",".join(ctx.identity.scopes),
            "X-Request-Id": ctx.request_id,
            "Cache-Control": "no-store",
        },
    )


def _deny(ctx: Ctx, r: Refusal) -> web.Response:
    # Only 401 and 403 mean "denied" to nginx; a malformed credential (400) is still a
    # credential problem, and every other refusal (404, 405, 400 target) is a denial.
    status = 401 if r.status == 401 or r.reason == "malformed_credentials" else 403
    r.status = status
    ctx.out.status, ctx.out.outcome, ctx.out.reason = status, r.outcome, r.reason
    if isinstance(r, CredentialRefused):
        ctx.presented_kid = r.key_id
    return render(r, ctx.dialect, ctx.request_id)
