"""A headless keyring backend: every entry in one AES-256-GCM encrypted file.

Made for a system service, where no Secret Service exists. keyring imports this module when
it loads plugins (entry point ``keyring.backends``), so importing it is cheap and does
nothing: ``cryptography`` is imported on first use, files are touched on first use.

Files in the keyring directory (created 0700 if missing; refused if group/world-writable):

``keyring.enc`` (0600)
    ``b"LAKR" | version (1 byte, = 1) | nonce (12 bytes) | AES-256-GCM(ciphertext || tag)``.
    The 5-byte header is the GCM associated data, so the version cannot be swapped. The
    nonce is fresh from :mod:`secrets` on every write (random 96-bit nonces are safe far
    beyond the number of writes a key store sees, NIST SP 800-38D §8.3). The plaintext is
    UTF-8 JSON ``{"entries": {service: {username: password}}}``.
``keyring.key`` (0600)
    The fallback master key, 32 raw bytes from :mod:`secrets`, used only when no systemd
    credential provides one.
``keyring.lock``
    ``flock(2)`` target that serializes writers across processes.

The 32-byte master key is read from ``$CREDENTIALS_DIRECTORY/<credential>`` when that file
exists (systemd ``LoadCredentialEncrypted=``, so it can be sealed to the host or TPM by
``systemd-creds``); its content may be the 32 raw bytes, 64 hex digits or base64 of them
(surrounding whitespace ignored). Otherwise ``keyring.key`` is used, and created on first use
only if no ``keyring.enc`` exists yet: a store whose key is missing or wrong is an error,
never silently replaced by a new empty store (that would lose every secret).

Configuration when keyring instantiates the class itself (``PYTHON_KEYRING_BACKEND``,
keyringrc): the directory is ``KEYRING_PROPERTY_KEYRING_DIR``, else
``LOCALAI_AUTHD_KEYRING_DIR``, else systemd's ``$STATE_DIRECTORY``; the credential name is
``KEYRING_PROPERTY_CREDENTIAL``, else ``localai-authd.keyring-key``. localai-authd itself sets
both attributes after instantiation.

Crash safety: a write goes to a fresh temp file (O_EXCL, 0600 from creation), is fsynced,
renamed over ``keyring.enc`` and the directory fsynced, so kill -9 at any moment leaves the
old or the new store, never a mix. Temp files left by a crash are removed by the next writer.
"""

from __future__ import annotations

import base64
import binascii
import configparser
import hmac
import json
import os
import secrets
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import keyring.backend
import keyring.errors
from keyring.compat import properties

from .privatefile import (
    KeyringFileError,
    atomic_write,
    check_private,
    create_key_file,
    flock,
    os_errors,
    read_private,
    remove_stale_temps,
)

__all__ = ["CLASS_PATH", "DEFAULT_CREDENTIAL", "EncryptedFileKeyring", "KeyringFileError"]

CLASS_PATH = f"{__name__}.EncryptedFileKeyring"
STORE_NAME = "keyring.enc"
KEY_NAME = "keyring.key"
LOCK_NAME = "keyring.lock"
DEFAULT_CREDENTIAL = "localai-authd.keyring-key"
ENV_DIR = "LOCALAI_AUTHD_KEYRING_DIR"
# Above keyrings.alt's plaintext (0.5) and encrypted (0.6) files, at keyring's "recommended"
# threshold (1), below every desktop keyring (SecretService 5, KWallet 4.9, libsecret 4.8).
PRIORITY = 1.5

_MAGIC = b"LAKR"
_VERSION = 1
_HEADER = _MAGIC + bytes([_VERSION])
_NONCE_LEN = 12
_KEY_LEN = 32

Entries = dict[str, dict[str, str]]


class EncryptedFileKeyring(keyring.backend.KeyringBackend):
    """All entries in ``<dir>/keyring.enc``, AES-256-GCM, key from a systemd credential."""

    def __init__(self) -> None:
        self._dir: Path | None = None
        self._credential = DEFAULT_CREDENTIAL
        # Guards the cache and orders this instance's threads; other instances and other
        # processes are ordered by flock, which conflicts between open file descriptions.
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int, bytes], bytes, Entries] | None = None
        # Last: keyring's convention, KEYRING_PROPERTY_<NAME> env vars set attributes.
        super().__init__()  # type: ignore[no-untyped-call]

    @properties.classproperty
    def priority(cls) -> float:
        """Viable only where it was asked for, so other programs never pick it up unasked.

        Explicit selection (PYTHON_KEYRING_BACKEND, keyringrc) goes through keyring's
        load_keyring, which also reads this property, so naming the class counts as asking.
        """
        if os.environ.get(ENV_DIR) or _credential_present() or _explicitly_requested():
            return PRIORITY
        raise RuntimeError(
            f"{CLASS_PATH} is used only when asked for: set {ENV_DIR}, provide the systemd "
            f"credential {DEFAULT_CREDENTIAL}, or name it in PYTHON_KEYRING_BACKEND"
        )

    @property
    def keyring_dir(self) -> Path:
        if self._dir is not None:
            return self._dir
        env = os.environ.get(ENV_DIR)
        if env:
            return Path(env)
        # systemd's StateDirectory= may list several directories, colon-separated.
        state = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
        if state:
            return Path(state)
        raise KeyringFileError(
            f"{CLASS_PATH} has no directory: set {ENV_DIR} (or KEYRING_PROPERTY_KEYRING_DIR, "
            "or run under systemd with StateDirectory=)"
        )

    @keyring_dir.setter
    def keyring_dir(self, value: str | os.PathLike[str]) -> None:
        with self._lock:
            self._dir = Path(value)
            self._cache = None

    @property
    def credential(self) -> str:
        return self._credential

    @credential.setter
    def credential(self, value: str) -> None:
        # The name is a file name inside $CREDENTIALS_DIRECTORY, never a path.
        if not value or "/" in value or value in (".", ".."):
            raise ValueError(f"invalid credential name {value!r}")
        with self._lock:
            self._credential = value
            self._cache = None

    # keyring API

    def get_password(self, service: str, username: str) -> str | None:
        with self._lock, os_errors():
            d = self._checked_dir()
            key, source = self._key(d, have_lock=False)
            return self._read(d, key, source).get(service, {}).get(username)

    def set_password(self, service: str, username: str, password: str) -> None:
        if not isinstance(password, str):
            raise TypeError("password must be a str")

        def put(entries: Entries) -> None:
            entries.setdefault(service, {})[username] = password

        self._update(put)

    def delete_password(self, service: str, username: str) -> None:
        def drop(entries: Entries) -> None:
            users = entries.get(service, {})
            if username not in users:
                raise keyring.errors.PasswordDeleteError("No such password!")
            del users[username]
            if not users:
                del entries[service]

        self._update(drop)

    # internals

    def _update(self, change: Callable[[Entries], None]) -> None:
        with self._lock, os_errors():
            d = self._checked_dir()
            with flock(d / LOCK_NAME):
                remove_stale_temps(d, (STORE_NAME, KEY_NAME))
                key, source = self._key(d, have_lock=True)
                # Copy: the cached dict must stay what is on disk if the write fails.
                entries = {s: dict(u) for s, u in self._read(d, key, source).items()}
                change(entries)
                self._write(d, key, entries)

    def _checked_dir(self) -> Path:
        d = self.keyring_dir
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = os.stat(d)
        if not stat.S_ISDIR(st.st_mode):
            raise KeyringFileError(f"{d} is not a directory")
        if st.st_mode & 0o022:
            raise KeyringFileError(
                f"keyring directory {d} is group- or world-writable (mode "
                f"{stat.S_IMODE(st.st_mode):04o}), so others could replace the store: "
                f"chmod 0700 {d}"
            )
        return d

    def _key(self, d: Path, *, have_lock: bool) -> tuple[bytes, str]:
        cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            cred = Path(cred_dir) / self._credential
            source = f"systemd credential {cred}"
            try:
                raw = cred.read_bytes()
            except FileNotFoundError:
                pass
            else:
                return _parse_key(raw, source), source
        key_file = d / KEY_NAME
        source = f"key file {key_file}"
        raw_key = read_private(key_file)
        if raw_key is not None:
            return _parse_key(raw_key, source), source
        store = d / STORE_NAME
        if os.path.lexists(store):
            raise KeyringFileError(
                f"{store} exists but its key is missing: neither the systemd credential "
                f"{self._credential} (in $CREDENTIALS_DIRECTORY) nor {key_file} is present. "
                "Restore the key from backup; a new key would make every stored secret "
                "unreadable, so none is created"
            )
        if not have_lock:
            with flock(d / LOCK_NAME):
                return self._key(d, have_lock=True)
        create_key_file(key_file, _KEY_LEN)
        return self._key(d, have_lock=True)

    def _read(self, d: Path, key: bytes, source: str) -> Entries:
        path = d / STORE_NAME
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if self._cache is not None:
                # This instance has read or written the store, so it was removed under us.
                # Read as empty, the next write would replace every entry (the key store's
                # pepper, its signing secrets) with one, and a reload would forget every key.
                raise KeyringFileError(
                    f"{path} was removed while in use; nothing was changed. Restore it from "
                    "backup (the daemon serves the keys it holds in memory until then)"
                ) from None
            return {}
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            check_private(st, path)
            head = f.read(len(_HEADER) + _NONCE_LEN)
            if len(head) < len(_HEADER) + _NONCE_LEN or not head.startswith(_MAGIC):
                raise KeyringFileError(f"{path} is not a localai-authd keyring (bad header)")
            if head[: len(_HEADER)] != _HEADER:
                raise KeyringFileError(
                    f"{path} has format version {head[len(_MAGIC)]}, this version reads "
                    f"{_VERSION}: upgrade localai-authd"
                )
            nonce = head[len(_HEADER) :]
            # The nonce joins the stat triple: an inode number can be reused within one
            # mtime tick by another process's write of the same size; a nonce is not.
            ident = (st.st_ino, st.st_mtime_ns, st.st_size, nonce)
            if (
                self._cache is not None
                and self._cache[0] == ident
                and hmac.compare_digest(self._cache[1], key)
            ):
                return self._cache[2]
            sealed = f.read()
        entries = _decrypt(key, nonce, sealed, path, source)
        self._cache = (ident, key, entries)
        return entries

    def _write(self, d: Path, key: bytes, entries: Entries) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        plaintext = json.dumps({"entries": entries}, ensure_ascii=False).encode()
        nonce = secrets.token_bytes(_NONCE_LEN)
        data = _HEADER + nonce + AESGCM(key).encrypt(nonce, plaintext, _HEADER)
        path = d / STORE_NAME
        atomic_write(path, data)
        st = os.stat(path)
        self._cache = ((st.st_ino, st.st_mtime_ns, st.st_size, nonce), key, entries)


def _decrypt(key: bytes, nonce: bytes, sealed: bytes, path: Path, source: str) -> Entries:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    try:
        plaintext = AESGCM(key).decrypt(nonce, sealed, _HEADER)
    except InvalidTag:
        raise KeyringFileError(
            f"{path} cannot be decrypted with the key from {source}: the key is wrong (was "
            "the credential or keyring.key replaced?) or the file is damaged. Nothing was "
            "changed; restore the matching key or the store from backup"
        ) from None
    doc = json.loads(plaintext)
    entries = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(entries, dict):
        raise KeyringFileError(f"{path} decrypted but holds no entries table")
    return entries


def _parse_key(raw: bytes, source: str) -> bytes:
    """32 raw bytes, or 64 hex digits, or base64 (standard or URL-safe) of 32 bytes."""
    if len(raw) == _KEY_LEN:
        return raw
    text = raw.strip()
    candidates: list[Callable[[bytes], bytes]] = [
        _from_hex if len(text) == 2 * _KEY_LEN else base64.b64decode,
        base64.urlsafe_b64decode,
    ]
    for decode in candidates:
        try:
            key = decode(text)
        except (ValueError, binascii.Error):
            continue
        if len(key) == _KEY_LEN:
            return key
    # The length only: the content is (or is close to) a secret.
    raise KeyringFileError(
        f"{source} does not hold a 32-byte key ({len(raw)} bytes; expected 32 raw bytes, 64 "
        "hex digits or base64). Create one with e.g. `head -c 32 /dev/urandom | "
        f"systemd-creds encrypt --name={DEFAULT_CREDENTIAL} - <file>`"
    )


def _from_hex(text: bytes) -> bytes:
    return bytes.fromhex(text.decode("ascii"))


def _credential_present() -> bool:
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    return cred_dir is not None and os.path.exists(os.path.join(cred_dir, DEFAULT_CREDENTIAL))


def _explicitly_requested() -> bool:
    if os.environ.get("PYTHON_KEYRING_BACKEND", "").strip() == CLASS_PATH:
        return True
    # keyringrc, read as keyring.core.load_config reads it.
    from keyring.util import platform_

    config = configparser.RawConfigParser()
    try:
        config.read(platform_.config_root() / "keyringrc.cfg", encoding="utf-8")
        return config.get("backend", "default-keyring").strip() == CLASS_PATH
    except (configparser.Error, OSError, UnicodeError):
        return False
