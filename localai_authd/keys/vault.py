"""Secret storage through the keyring API: backend choice, allow-list, error translation.

The only module that imports :mod:`keyring`. Every call blocks (D-Bus, fsync): call it from a
worker thread, never the event loop.

Backend choice (``[keyring] backend``):

- ``"auto"``: keyring's own conventions, evaluated afresh on every :func:`open_vault` and
  never through keyring's process-wide ``get_keyring()``/``set_keyring()`` cache:
  ``PYTHON_KEYRING_BACKEND``, then keyringrc, else keyring's priority choice;
- ``"file"``: our :class:`~localai_authd.keys.backend.EncryptedFileKeyring`;
- a full class path, e.g. ``"keyring.backends.SecretService.Keyring"``.

The result must be on an allow-list. With no D-Bus session keyring falls back to its ``fail``
backend, or, with keyrings.alt installed, silently to a plaintext file; both are refused
(:class:`UntrustedKeyring`), as are ``null`` and every keyrings.alt backend.

keyring's ``ChainerBackend`` (what its priority choice yields when several backends are
viable) reads from every backend in its chain and writes to the first: a plaintext file in
the chain would be read from. So a chain is never used as such; the first trusted backend in
it (highest priority first, the one the chainer would write to if it were first) is used
alone, and a chain with none is refused.

:func:`open_vault` probes the backend with a read, so a locked or absent Secret Service or an
unreadable key fails at start with :class:`KeyringUnavailable`, not on the first request.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
from collections.abc import Iterator

import keyring.backend
import keyring.core
import keyring.errors
from keyring.backends import chainer
from keyring.util import platform_

from localai_authd.errors import KeyringUnavailable, UntrustedKeyring
from localai_authd.keys.backend import CLASS_PATH as FILE_BACKEND
from localai_authd.keys.backend import DEFAULT_CREDENTIAL, EncryptedFileKeyring

SERVICE = "localai-authd"

# Exact classes, by name: a subclass may store anywhere, and naming them avoids importing the
# macOS/Windows modules here. libsecret is the same Secret Service through another client.
TRUSTED_BACKENDS = frozenset(
    {
        FILE_BACKEND,
        "keyring.backends.SecretService.Keyring",
        "keyring.backends.libsecret.Keyring",
        "keyring.backends.kwallet.DBusKeyring",
        "keyring.backends.kwallet.DBusKeyringKWallet4",
        "keyring.backends.macOS.Keyring",
        "keyring.backends.Windows.WinVaultKeyring",
    }
)
_CHAINER = f"{chainer.ChainerBackend.__module__}.{chainer.ChainerBackend.__qualname__}"
_UNLOCK_HINT = "start and unlock a Secret Service (gnome-keyring, KWallet) in this session"
_FILE_HINT = (
    'use the encrypted file backend: set [keyring] backend = "file" in the config, or '
    f"PYTHON_KEYRING_BACKEND={FILE_BACKEND}"
)
_FIX = f"{_UNLOCK_HINT}, or {_FILE_HINT}"
# Read by open_vault's probe, never written.
_PROBE_NAME = "localai-authd.probe"


class Vault:
    """Blocking secret storage through the keyring API. Call from a worker thread, never the
    event loop. Entries live under service ``SERVICE`` with username = name."""

    backend_name: str

    def __init__(self, backend: keyring.backend.KeyringBackend) -> None:
        self._backend = backend
        self.backend_name = _class_path(type(backend))

    def __repr__(self) -> str:
        return f"Vault({self.backend_name})"

    def get(self, name: str) -> str | None:
        _check_name(name)
        with self._translated("read", name):
            value = self._backend.get_password(SERVICE, name)
        return value

    def set(self, name: str, value: str) -> None:
        """Store ``value``; durable when it returns (as durable as the backend makes it)."""
        _check_name(name)
        if not isinstance(value, str):
            raise TypeError("value must be a str")
        with self._translated("write", name):
            self._backend.set_password(SERVICE, name, value)

    def delete(self, name: str) -> None:
        """Remove ``name``; no error if it is absent."""
        _check_name(name)
        # keyring's API reports "nothing to delete" as PasswordDeleteError.
        with (
            self._translated("delete", name),
            contextlib.suppress(keyring.errors.PasswordDeleteError),
        ):
            self._backend.delete_password(SERVICE, name)

    @contextlib.contextmanager
    def _translated(self, op: str, name: str) -> Iterator[None]:
        try:
            yield
        except _backend_errors() as e:
            raise KeyringUnavailable(
                f"keyring {self.backend_name} could not {op} {name!r}: {_describe(e)}{self._hint()}"
            ) from e

    def _hint(self) -> str:
        if self.backend_name == FILE_BACKEND:
            return ""  # the backend's own messages name the file and the fix
        return f" ({_FIX})"


def open_vault(
    backend: str, state_dir: pathlib.Path, credential: str = DEFAULT_CREDENTIAL
) -> Vault:
    """Resolve ``backend``, check it against the allow-list and probe it.

    Raises UntrustedKeyring for a backend that is not on the allow-list and
    KeyringUnavailable for one that cannot be used now.
    """
    resolved = _resolve(backend)
    if isinstance(resolved, EncryptedFileKeyring):
        resolved.keyring_dir = state_dir
        resolved.credential = credential
    vault = Vault(resolved)
    try:
        vault.get(_PROBE_NAME)
    except KeyringUnavailable as e:
        raise KeyringUnavailable(f"cannot open the keyring: {e.message}") from e
    return vault


def resolve_backend(backend: str) -> str:
    """The class path ``backend`` resolves to, as :func:`open_vault` would, allow-list included.

    Opens nothing: no secret is read or created (``localai-authd --check-config``).
    """
    return _class_path(type(_resolve(backend)))


def _resolve(backend: str) -> keyring.backend.KeyringBackend:
    if backend == "file":
        return EncryptedFileKeyring()
    if backend == "auto":
        env = os.environ.get("PYTHON_KEYRING_BACKEND", "").strip()
        if env:
            return _load_named(env, "PYTHON_KEYRING_BACKEND")
        configured = _load_config()
        if configured is not None:
            return configured
        return _first_trusted(None)
    if "." in backend:
        return _load_named(backend, "[keyring] backend")
    raise UntrustedKeyring(
        f'[keyring] backend = "{backend}" is not a backend: use "auto", "file" or a full '
        f'class path such as "keyring.backends.SecretService.Keyring"'
    )


def _load_named(name: str, source: str) -> keyring.backend.KeyringBackend:
    if name == _CHAINER:
        return _first_trusted(f"{source} = {name}")
    # Checked by name before importing, so an untrusted or misspelled module is never loaded.
    if name not in TRUSTED_BACKENDS:
        raise UntrustedKeyring(f"{source} = {name}: {_why_untrusted(name)}; {_FIX}")
    try:
        # load_keyring reads the class's priority, which raises when it is not viable here.
        loaded = keyring.core.load_keyring(name)
    except (ImportError, AttributeError) as e:
        raise KeyringUnavailable(
            f"{source} = {name} cannot be loaded ({_describe(e)}); {_FIX}"
        ) from e
    except (RuntimeError, OSError) as e:
        raise KeyringUnavailable(
            f"{source} = {name} is not usable here: {_describe(e)}; {_FIX}"
        ) from e
    return _trusted(loaded, f"{source} = {name}")


def _load_config() -> keyring.backend.KeyringBackend | None:
    source = f"keyringrc ({platform_.config_root() / 'keyringrc.cfg'})"
    try:
        loaded = keyring.core.load_config()
    except (ImportError, AttributeError) as e:
        raise KeyringUnavailable(f"{source} names a backend that cannot be loaded: {e}") from e
    except (RuntimeError, OSError) as e:
        raise KeyringUnavailable(
            f"{source}: backend is not usable here: {_describe(e)}; {_FIX}"
        ) from e
    if loaded is None:
        return None
    if isinstance(loaded, chainer.ChainerBackend):
        return _first_trusted(source)
    return _trusted(loaded, source)


def _trusted(
    backend: keyring.backend.KeyringBackend, source: str
) -> keyring.backend.KeyringBackend:
    name = _class_path(type(backend))
    if name not in TRUSTED_BACKENDS:
        raise UntrustedKeyring(f"{source} selects {name}: {_why_untrusted(name)}; {_FIX}")
    return backend


def _first_trusted(chain_source: str | None) -> keyring.backend.KeyringBackend:
    """keyring's priority choice (or an explicit chain), reduced to its first trusted member.

    Mirrors keyring.core._detect_backend and ChainerBackend.backends, but re-evaluates
    viability now: keyring.backend.get_all_keyring() caches the backends that were viable at
    its first call (a D-Bus session that appeared since would be missed).
    """
    keyring.backend.get_all_keyring()  # loads the entry-point plugins once
    ranked: list[tuple[float, keyring.backend.KeyringBackend]] = []
    for cls in keyring.backend.KeyringBackend.get_viable_backends():
        if issubclass(cls, chainer.ChainerBackend):
            continue
        try:
            priority = float(cls.priority)
            instance = cls()
        except Exception:  # noqa: S112 - keyring skips backends that fail here, as do we
            continue
        if priority > 0:  # ChainerBackend's rule: fail (0) and null (-1) are not candidates
            ranked.append((priority, instance))
    ranked.sort(key=lambda pair: pair[0], reverse=True)
    for _, candidate in ranked:
        if _class_path(type(candidate)) in TRUSTED_BACKENDS:
            return candidate
    names = ", ".join(_class_path(type(c)) for _, c in ranked)
    if chain_source is not None:
        what = f"{chain_source}: the chain holds no trusted backend ({names or 'empty'})"
    elif names:
        what = f"keyring would use {names.split(', ')[0]} ({_why_untrusted(names.split(', ')[0])})"
    else:
        what = (
            "keyring found no usable backend (it would use keyring.backends.fail.Keyring, "
            "which fails every call)"
        )
    raise UntrustedKeyring(f"{what}; {_FIX}")


def _why_untrusted(name: str) -> str:
    if name == "keyring.backends.fail.Keyring":
        return "keyring's fail backend (no usable keyring found) stores nothing"
    if name == "keyring.backends.null.Keyring":
        return "the null backend stores nothing"
    if name.startswith("keyrings.alt."):
        return "keyrings.alt backends keep secrets in plaintext or weakly encrypted"
    return "not a trusted keyring backend (trusted: " + ", ".join(sorted(TRUSTED_BACKENDS)) + ")"


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _check_name(name: str) -> None:
    # keyring deprecates empty usernames (a DeprecationWarning today, an error later).
    if not isinstance(name, str) or not name:
        raise ValueError("a vault entry name must be a non-empty str")


def _describe(e: BaseException) -> str:
    # Exception texts from keyring, secretstorage and our backend name files and causes,
    # never secret values; cap the length so a D-Bus error cannot flood a log line.
    text = str(e) or type(e).__name__
    return text if len(text) <= 300 else text[:300] + "…"


@functools.cache
def _backend_errors() -> tuple[type[BaseException], ...]:
    """What a backend raises when the store, not the caller, is at fault."""
    errors: list[type[BaseException]] = [
        keyring.errors.KeyringError,  # includes NoKeyringError, InitError, KeyringLocked
        OSError,  # files, sockets; jeepney raises FileNotFoundError for a missing bus socket
        RuntimeError,  # keyring's "not viable" convention
        UnicodeError,  # an undecodable stored value
    ]
    with contextlib.suppress(ImportError):
        from secretstorage.exceptions import SecretStorageException

        errors.append(SecretStorageException)
    with contextlib.suppress(ImportError):
        from jeepney.wrappers import DBusErrorResponse  # type: ignore[import-untyped]

        errors.append(DBusErrorResponse)
    return tuple(errors)
