"""The allow-list of upstream routes, and which upstream a path goes to. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .refusal import RouteNotAllowed

INFERENCE = "inference"
ADMIN = "admin"


@dataclass(frozen=True)
class Route:
    """One allowed upstream route, with what in it names a model.

    ``model_from``: "body" (the JSON fields in ``model_fields``), "path" (the tail of a
    ``/*`` pattern), "list" (the answer lists models: filtered for a key limited to models),
    "opaque" (the answer shows models the gateway cannot filter: refused to a key limited to
    models), or "" (no model is involved: open to any key with the scope).
    """

    methods: frozenset[str]
    pattern: str  # exact path, or ending in "/*" for "this prefix plus one or more segments"
    scope: str
    model_from: str = ""
    # Every body field that names a model the upstream acts on; each one present is checked.
    model_fields: tuple[str, ...] = ()
    # For a key limited to models: each group must have a field that names one (else the
    # upstream would pick a default, or fail, on a model nobody checked).
    required: tuple[tuple[str, ...], ...] = ()
    # Fields that reach models or content no glob can check (blob digests, a remote host,
    # legacy Modelfile text): refused for a key limited to models.
    unchecked: tuple[str, ...] = ()
    upload: bool = False  # large streamed body (blobs): max_upload_bytes, never parsed

    def matches_path(self, path: str) -> bool:
        if self.pattern.endswith("/*"):
            head = self.pattern[:-1]
            return path.startswith(head) and len(path) > len(head) and not path.endswith("/")
        return path == self.pattern


def _r(methods: str, pattern: str, scope: str = INFERENCE, **kw: object) -> Route:
    return Route(frozenset(methods.split()), pattern, scope, **kw)  # type: ignore[arg-type]


def _m(methods: str, pattern: str, scope: str = INFERENCE, /, **kw: object) -> Route:
    """A route whose JSON body names its model in ``model`` (Ollama's inference requests,
    OpenAI's, llama.cpp's and vLLM's: read from their request types)."""
    kw.setdefault("model_fields", ("model",))
    kw.setdefault("required", (kw["model_fields"],))
    return _r(methods, pattern, scope, model_from="body", **kw)


# Ollama's api/types.go: Show/Pull/Push/Delete read cmp.Or(Model, Name) (Name deprecated);
# Create names its target the same way and its base model in From; Copy has Source and
# Destination. Create's Files/DraftFiles/Adapters are blob digests (the weights of any model
# on the host), RemoteHost makes a model that forwards to another server, and the removed
# Modelfile/Path fields named a base model in free text on older servers.
_MODEL_OR_NAME = {"model_fields": ("model", "name"), "required": (("model", "name"),)}
_CREATE_UNCHECKED = ("files", "draft_files", "adapters", "remote_host", "modelfile", "path")

ROUTES: tuple[Route, ...] = (
    # Ollama native API (its docs/api.md)
    _r("GET HEAD", "/"),
    _r("GET HEAD", "/api/version"),
    _r("GET HEAD", "/api/tags", model_from="list"),
    _r("GET HEAD", "/api/ps", model_from="list"),
    _m("POST", "/api/show", **_MODEL_OR_NAME),
    _m("POST", "/api/generate"),
    _m("POST", "/api/chat"),
    _m("POST", "/api/embed"),
    _m("POST", "/api/embeddings"),
    # Ollama model administration: the admin scope
    _m("POST", "/api/pull", ADMIN, **_MODEL_OR_NAME),
    _m("POST", "/api/push", ADMIN, **_MODEL_OR_NAME),
    _m(
        "POST",
        "/api/create",
        ADMIN,
        model_fields=("model", "name", "from"),
        required=(("model", "name"),),
        unchecked=_CREATE_UNCHECKED,
    ),
    _m(
        "POST",
        "/api/copy",
        ADMIN,
        model_fields=("source", "destination"),
        required=(("source",), ("destination",)),
    ),
    _m("DELETE", "/api/delete", ADMIN, **_MODEL_OR_NAME),
    _r("HEAD POST", "/api/blobs/*", ADMIN, upload=True),
    # OpenAI-compatible (Ollama, llama.cpp server, vLLM, LocalAI)
    _r("GET", "/v1/models", model_from="list"),
    _r("GET", "/v1/models/*", model_from="path"),
    _m("POST", "/v1/chat/completions"),
    _m("POST", "/v1/completions"),
    _m("POST", "/v1/embeddings"),
    _m("POST", "/v1/responses"),
    _m("POST", "/v1/rerank"),
    _m("POST", "/v1/score"),
    # llama.cpp server and vLLM native endpoints ("model" picks the model in llama.cpp's
    # router mode; without one the server uses its default, which a limited key may not name)
    _r("GET HEAD", "/health"),
    _r("GET", "/version"),
    _r("GET", "/props", model_from="opaque"),
    _m("POST", "/completion"),
    _m("POST", "/completions"),
    _m("POST", "/embedding"),
    _m("POST", "/embeddings"),
    _m("POST", "/infill"),
    _m("POST", "/rerank"),
    _m("POST", "/tokenize"),
    _m("POST", "/detokenize"),
    _m("POST", "/apply-template"),
    _r("GET", "/slots", ADMIN, model_from="opaque"),
    _r("GET", "/metrics", ADMIN),
)


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
