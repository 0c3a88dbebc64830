"""Ollama model references, and model globs matched against them. Pure.

A reference is ``[scheme://][host[:port]/][namespace/]model[:tag][:cloud|:local]``, read the
way Ollama reads it (``types/model/name.go`` ParseName and ``internal/modelref`` ParseRef):

- the tag is what follows the last ``:`` when that comes after the last ``/``;
- then the model is the last ``/``-segment, the namespace the one before, the host the rest;
- missing parts take the defaults ``registry.ollama.ai``, ``library`` and ``latest``, so
  ``llama3`` is ``registry.ollama.ai/library/llama3:latest``;
- a final ``:cloud`` / ``:local`` (any case), or a tag ending in ``-cloud``, chooses where the
  model runs (``:cloud`` sends the request to ollama.com) and is not part of the name.

Ollama finds models case-insensitively, so references and globs are compared in lower case:
``LLAMA3`` is the same model as ``llama3`` and no spelling gets past a glob.

A glob is read with the same rules, its parts matched separately (``*`` never crosses a
``/``), so a glob without a host matches only the default registry and a glob without a
namespace only its ``library``: ``llama3*`` does not match ``llama3.attacker.example/x/y``.
``*`` is every library model of the default registry, ``*/*`` every namespace there,
``*/*/*`` any registry. A glob without a tag matches every tag of the models it names when it
reaches them with a wildcard (``llama3*`` matches ``llama3:8b``), else only ``:latest``.
A glob names a source only by ending in ``:cloud`` or ``:local``; without one it matches
models that run here (no suffix or ``:local``), never ``:cloud``.

References the gateway cannot read the way Ollama does are refused (:class:`BadReference`):
anything but the ASCII characters ``A-Z a-z 0-9 . _ - : / +`` (whitespace, which Ollama would
trim, control characters, non-ASCII), an ``@`` digest, an empty part (``/llama3``, ``a//b``,
``llama3:``), more than three ``/``-parts and conflicting source suffixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import lru_cache

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"

_REF_CHARS = re.compile(r"[A-Za-z0-9._:/+-]{1,512}")
_GLOB_CHARS = re.compile(r"[A-Za-z0-9._:/+*?\[\]!@-]{1,512}")
_WILD = frozenset("*?[")


class BadReference(ValueError):
    """A model reference (or glob) that cannot be read unambiguously."""


@dataclass(frozen=True)
class ModelRef:
    host: str
    namespace: str
    model: str
    tag: str  # "" only in a glob: "no tag given"
    scheme: str = ""  # "" unless given (http://host/...)
    source: str = ""  # "", "cloud" or "local"

    def __str__(self) -> str:
        s = f"{self.scheme}://" if self.scheme else ""
        s += f"{self.host}/{self.namespace}/{self.model}"
        if self.tag:
            s += f":{self.tag}"
        return s + (f":{self.source}" if self.source else "")


def _source_suffix(s: str) -> tuple[str, str]:
    """(base, source) as Ollama's parseSourceSuffix reads them."""
    idx = s.rfind(":")
    if idx >= 0:
        suffix = s[idx + 1 :]
        if suffix in ("cloud", "local"):
            return s[:idx], suffix
        if "/" not in suffix and suffix.endswith("-cloud"):
            return s[: idx + 1] + suffix[: -len("-cloud")], "cloud"
    return s, ""


def _split(s: str, glob: bool) -> ModelRef:
    s = s.lower()
    base, source = _source_suffix(s)
    if source and _source_suffix(base)[1]:
        raise BadReference("conflicting source suffixes (:cloud / :local)")
    scheme, tag = "", ""
    has_scheme = "://" in base
    if has_scheme:
        scheme, _, base = base.partition("://")
    has_tag = base.rfind(":") > base.rfind("/")
    if has_tag:
        base, _, tag = base.rpartition(":")
    parts = base.split("/")
    if (has_scheme and (not scheme or len(parts) < 3)) or (has_tag and not tag) or "" in parts:
        raise BadReference("empty part in the model name")
    if len(parts) > 3:
        raise BadReference("more than host/namespace/model")
    model = parts[-1]
    namespace = parts[-2] if len(parts) >= 2 else DEFAULT_NAMESPACE
    host = "/".join(parts[:-2]) if len(parts) >= 3 else DEFAULT_HOST
    if ":" in namespace + model or "://" in host:
        raise BadReference("misplaced ':' in the model name")
    return ModelRef(host, namespace, model, tag or ("" if glob else DEFAULT_TAG), scheme, source)


def parse(name: str) -> ModelRef:
    """The reference ``name`` as Ollama resolves it (lower case); BadReference if unreadable."""
    if not _REF_CHARS.fullmatch(name):
        raise BadReference(f"unexpected characters in model name {name[:80]!r}")
    return _split(name, glob=False)


@lru_cache(maxsize=4096)
def parse_glob(glob: str) -> ModelRef:
    if not _GLOB_CHARS.fullmatch(glob):
        raise BadReference(f"unexpected characters in model pattern {glob[:80]!r}")
    return _split(glob, glob=True)


def _part(value: str, pattern: str) -> bool:
    return value == pattern if _WILD.isdisjoint(pattern) else fnmatchcase(value, pattern)


def matches(ref: ModelRef, glob: str) -> bool:
    try:
        g = parse_glob(glob)
    except BadReference:
        return False  # a pattern we cannot read grants nothing
    if ref.scheme != g.scheme or ref.source not in ((g.source,) if g.source else ("", "local")):
        return False
    if not (_part(ref.host, g.host) and _part(ref.namespace, g.namespace)):
        return False
    if g.tag:
        return _part(ref.model, g.model) and _part(ref.tag, g.tag)
    # No tag in the glob: it names every tag it can reach with a wildcard, else ":latest".
    return _part(f"{ref.model}:{ref.tag}", g.model) or (
        ref.tag == DEFAULT_TAG and _part(ref.model, g.model)
    )


@lru_cache(maxsize=4096)
def allowed(name: str, globs: tuple[str, ...]) -> bool:
    """Whether the model ``name`` matches one of ``globs``; False if it cannot be read.
    Remembered: the same few names and keys come back on every request."""
    try:
        ref = parse(name)
    except BadReference:
        return False
    return any(matches(ref, g) for g in globs)
