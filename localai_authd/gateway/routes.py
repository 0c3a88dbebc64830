"""The allow-list of upstream routes, and which upstream a path goes to. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .target import BadTarget

INFERENCE = "inference"
ADMIN = "admin"


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    pattern: str  # exact path, or ending in "/*" for "this prefix plus one or more segments"
    scope: str
    model_from: str = ""  # "body": JSON "model"/"name" (copy: source+destination); "path": tail
    upload: bool = False  # large streamed body (blobs): max_upload_bytes, never parsed

    def matches_path(self, path: str) -> bool:
        if self.pattern.endswith("/*"):
            head = self.pattern[:-1]
            return path.startswith(head) and len(path) > len(head) and not path.endswith("/")
        return path == self.pattern


def _r(methods: str, pattern: str, scope: str = INFERENCE, **kw: object) -> Route:
    return Route(frozenset(methods.split()), pattern, scope, **kw)  # type: ignore[arg-type]


ROUTES: tuple[Route, ...] = (
    # Ollama native API (docs/api.md)
    _r("GET HEAD", "/"),
    _r("GET HEAD", "/api/version"),
    _r("GET HEAD", "/api/tags"),
    _r("GET HEAD", "/api/ps"),
    _r("POST", "/api/show", model_from="body"),
    _r("POST", "/api/generate", model_from="body"),
    _r("POST", "/api/chat", model_from="body"),
    _r("POST", "/api/embed", model_from="body"),
    _r("POST", "/api/embeddings", model_from="body"),
    # Ollama model administration: the admin scope
    _r("POST", "/api/pull", ADMIN, model_from="body"),
    _r("POST", "/api/push", ADMIN, model_from="body"),
    _r("POST", "/api/create", ADMIN, model_from="body"),
    _r("POST", "/api/copy", ADMIN, model_from="body"),
    _r("DELETE", "/api/delete", ADMIN, model_from="body"),
    _r("HEAD POST", "/api/blobs/*", ADMIN, upload=True),
    # OpenAI-compatible (Ollama, llama.cpp server, vLLM, LocalAI)
    _r("GET", "/v1/models"),
    _r("GET", "/v1/models/*", model_from="path"),
    _r("POST", "/v1/chat/completions", model_from="body"),
    _r("POST", "/v1/completions", model_from="body"),
    _r("POST", "/v1/embeddings", model_from="body"),
    _r("POST", "/v1/responses", model_from="body"),
    _r("POST", "/v1/rerank", model_from="body"),
    _r("POST", "/v1/score", model_from="body"),
    # llama.cpp server and vLLM native endpoints
    _r("GET HEAD", "/health"),
    _r("GET", "/version"),
    _r("GET", "/props"),
    _r("POST", "/completion", model_from="body"),
    _r("POST", "/completions", model_from="body"),
    _r("POST", "/embedding", model_from="body"),
    _r("POST", "/embeddings", model_from="body"),
    _r("POST", "/infill", model_from="body"),
    _r("POST", "/rerank", model_from="body"),
    _r("POST", "/tokenize", model_from="body"),
    _r("POST", "/detokenize", model_from="body"),
    _r("POST", "/apply-template"),
    _r("GET", "/slots", ADMIN),
    _r("GET", "/metrics", ADMIN),
)


class RouteNotAllowed(BadTarget):
    pass


def match(method: str, path: str) -> Route:
    """The route for ``method path``; RouteNotAllowed (404 or 405) for everything else."""
    candidates = [r for r in ROUTES if r.matches_path(path)]
    if not candidates:
        raise RouteNotAllowed(
            "route_not_allowed", f"{path} is not a route this gateway serves", 404
        )
    for r in candidates:
        if method in r.methods:
            return r
    raise RouteNotAllowed("method_not_allowed", f"{method} is not allowed on {path}", 405)


def select_upstream(path: str, prefixes: tuple[str, ...]) -> tuple[int, str] | None:
    """(index of the upstream, path as that upstream sees it) by longest matching prefix."""
    best: tuple[int, str] | None = None
    best_len = -1
    for i, p in enumerate(prefixes):
        if p == "":
            if best_len < 0:
                best, best_len = (i, path), 0
        elif (path == p or path.startswith(p + "/")) and len(p) > best_len:
            best, best_len = (i, path[len(p) :] or "/"), len(p)
    return best
