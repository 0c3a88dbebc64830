"""The Vault contract, run against our file backend and a real Secret Service (gnome-keyring),
and open_vault's choice of backend: what it refuses and what it reports."""

from __future__ import annotations

import gc
import json
import os
import time
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path

import keyring.core
import pytest

from localai_authd.errors import KeyringUnavailable, UntrustedKeyring
from localai_authd.keys.backend import CLASS_PATH as FILE_BACKEND
from localai_authd.keys.vault import SERVICE, Vault, open_vault

SECRET_SERVICE = "keyring.backends.SecretService.Keyring"

OpenVault = Callable[[], Vault]


@pytest.fixture(params=["file", pytest.param("secretservice", marks=pytest.mark.secretservice)])
def open_any(request: pytest.FixtureRequest, tmp_path: Path) -> OpenVault:
    """Opens a new Vault on the same store each call."""
    if request.param == "file":
        return lambda: open_vault("file", tmp_path / "state")
    request.getfixturevalue("secret_service")
    return lambda: open_vault(SECRET_SERVICE, tmp_path / "state")


@pytest.fixture
def ns() -> str:
    # The Secret Service outlives a test: unique names keep tests independent.
    return f"t{uuid.uuid4().hex[:10]}-"


# The contract


def test_backend_name(open_any: OpenVault, request: pytest.FixtureRequest) -> None:
    expected = FILE_BACKEND if "file" in request.node.callspec.id else SECRET_SERVICE
    assert open_any().backend_name == expected


def test_get_missing_is_none(open_any: OpenVault, ns: str) -> None:
    assert open_any().get(ns + "missing") is None


def test_roundtrip_and_unicode(open_any: OpenVault, ns: str) -> None:
    vault = open_any()
    vault.set(ns + "plain", "sk_local_abc_123")
    vault.set(ns + "unicode", "pässwörd ключ 🔑 \u2028 \x00 end")
    vault.set(ns + "ключ", "name is unicode too")
    assert vault.get(ns + "plain") == "sk_local_abc_123"
    assert vault.get(ns + "unicode") == "pässwörd ключ 🔑 \u2028 \x00 end"
    assert vault.get(ns + "ключ") == "name is unicode too"


def test_large_value(open_any: OpenVault, ns: str) -> None:
    # The key table is one JSON value and grows with the number of keys.
    table = {
        f"kid{i:06d}": {"hash": "ab" * 32, "scopes": ["models:llama3*"], "n": "ü"}
        for i in range(2000)
    }
    value = json.dumps(table, ensure_ascii=False)
    assert len(value.encode()) > 200_000
    vault = open_any()
    vault.set(ns + "table", value)
    assert vault.get(ns + "table") == value
    assert open_any().get(ns + "table") == value


def test_overwrite(open_any: OpenVault, ns: str) -> None:
    vault = open_any()
    vault.set(ns + "a", "first")
    vault.set(ns + "a", "second")
    assert vault.get(ns + "a") == "second"
    assert open_any().get(ns + "a") == "second"


def test_delete(open_any: OpenVault, ns: str) -> None:
    vault = open_any()
    vault.set(ns + "a", "1")
    vault.set(ns + "b", "2")
    vault.delete(ns + "a")
    assert vault.get(ns + "a") is None
    assert vault.get(ns + "b") == "2"
    vault.delete(ns + "a")  # absent: no error
    vault.delete(ns + "never-existed")


def test_values_survive_a_new_vault(open_any: OpenVault, ns: str) -> None:
    open_any().set(ns + "a", "kept")
    assert open_any().get(ns + "a") == "kept"


def test_invalid_arguments(open_any: OpenVault) -> None:
    vault = open_any()
    with pytest.raises(ValueError, match="non-empty"):
        vault.set("", "x")
    with pytest.raises(TypeError):
        vault.set("x", b"bytes")  # type: ignore[arg-type]


# Backend choice


def test_file_backend_uses_state_dir_and_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "my-cred").write_bytes(os.urandom(32))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    vault = open_vault("file", tmp_path / "state", credential="my-cred")
    vault.set("pepper", "x")
    assert (tmp_path / "state" / "keyring.enc").exists()
    assert not (tmp_path / "state" / "keyring.key").exists()


def test_open_vault_does_not_touch_keyrings_global_choice(tmp_path: Path) -> None:
    before = keyring.core._keyring_backend
    open_vault("file", tmp_path / "state")
    assert keyring.core._keyring_backend is before


def test_auto_honours_python_keyring_backend_for_our_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", FILE_BACKEND)
    vault = open_vault("auto", tmp_path / "state")
    assert vault.backend_name == FILE_BACKEND
    vault.set("a", "1")
    assert (tmp_path / "state" / "keyring.enc").exists()


def _write_keyringrc(backend: str) -> None:
    rc = Path(os.environ["XDG_CONFIG_HOME"]) / "python_keyring" / "keyringrc.cfg"
    rc.parent.mkdir(parents=True)
    rc.write_text(f"[backend]\ndefault-keyring = {backend}\n")


def test_auto_honours_keyringrc(tmp_path: Path) -> None:
    _write_keyringrc(FILE_BACKEND)
    vault = open_vault("auto", tmp_path / "state")
    assert vault.backend_name == FILE_BACKEND
    vault.set("a", "1")
    assert (tmp_path / "state" / "keyring.enc").exists()


def test_auto_prefers_our_backend_over_plaintext_when_offered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No D-Bus; keyrings.alt's plaintext file and our backend are both viable, so keyring
    # would chain them. We take the trusted one, configured with our state dir.
    monkeypatch.setenv("LOCALAI_AUTHD_KEYRING_DIR", str(tmp_path / "from-env"))
    vault = open_vault("auto", tmp_path / "state")
    assert vault.backend_name == FILE_BACKEND
    vault.set("a", "1")
    assert (tmp_path / "state" / "keyring.enc").exists()
    assert not (tmp_path / "from-env").exists()


@pytest.mark.secretservice
def test_auto_picks_secret_service_when_present(secret_service: str, tmp_path: Path) -> None:
    assert open_vault("auto", tmp_path / "state").backend_name == SECRET_SERVICE


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ("keyring.backends.fail.Keyring", "fail backend"),
        ("keyring.backends.null.Keyring", "null backend"),
        ("keyrings.alt.file.PlaintextKeyring", "plaintext"),
        ("keyrings.alt.file.EncryptedKeyring", "plaintext or weakly encrypted"),
        ("no.such.Backend", "not a trusted"),
    ],
)
def test_auto_refuses_untrusted_env_choice(
    env: str, needle: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", env)
    with pytest.raises(UntrustedKeyring, match=needle) as info:
        open_vault("auto", tmp_path / "state")
    message = str(info.value)
    assert 'backend = "file"' in message
    assert f"PYTHON_KEYRING_BACKEND={FILE_BACKEND}" in message
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize(
    "backend",
    ["keyring.backends.null.Keyring", "keyrings.alt.file.PlaintextKeyring", "plaintext"],
)
def test_explicit_untrusted_backend_refused(backend: str, tmp_path: Path) -> None:
    with pytest.raises(UntrustedKeyring):
        open_vault(backend, tmp_path / "state")


def test_keyringrc_untrusted_refused(tmp_path: Path) -> None:
    _write_keyringrc("keyrings.alt.file.PlaintextKeyring")
    with pytest.raises(UntrustedKeyring, match="keyringrc"):
        open_vault("auto", tmp_path / "state")


def test_auto_without_any_trusted_backend_refused(tmp_path: Path) -> None:
    # What a system service sees: no D-Bus session. keyring would fall back to keyrings.alt's
    # plaintext file here (it is installed in the dev venv), or to its fail backend.
    with pytest.raises(UntrustedKeyring, match="keyring would use") as info:
        open_vault("auto", tmp_path / "state")
    assert "Secret Service" in str(info.value)


def test_chain_without_trusted_member_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.chainer.ChainerBackend")
    with pytest.raises(UntrustedKeyring, match="chain holds no trusted backend"):
        open_vault("auto", tmp_path / "state")


def test_chain_with_trusted_member_uses_it_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.chainer.ChainerBackend")
    monkeypatch.setenv("LOCALAI_AUTHD_KEYRING_DIR", str(tmp_path / "from-env"))
    assert open_vault("auto", tmp_path / "state").backend_name == FILE_BACKEND


@pytest.mark.timeout(60)
@pytest.mark.parametrize("address", [None, "unix:path=/nonexistent/localai-authd-test-bus"])
def test_secret_service_without_session_bus(
    address: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if address is not None:
        monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    started = time.monotonic()
    with pytest.raises(KeyringUnavailable, match="not usable here") as info:
        open_vault(SECRET_SERVICE, tmp_path / "state")
    # Fails fast, not after D-Bus's 25 s call timeout (with room for a busy machine).
    assert time.monotonic() - started < 20
    assert 'backend = "file"' in str(info.value)


@pytest.mark.secretservice
@pytest.mark.timeout(60)
def test_locked_secret_service_fails_at_open(locked_secret_service: str, tmp_path: Path) -> None:
    # keyring's SecretService.get_preferred_collection does not close its D-Bus connection
    # when the collection cannot be had (cf. jaraco/keyring#380): the socket is closed by the
    # garbage collector with a ResourceWarning. Collect it here, where it is expected.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            open_vault(SECRET_SERVICE, tmp_path / "state")
        except KeyringUnavailable as e:
            message = str(e)
        else:
            pytest.fail("a locked Secret Service was accepted")
        gc.collect()
    assert message.startswith("cannot open the keyring")
    assert "Prompt dismissed" in message
    assert "unlock a Secret Service" in message


# Failures after open become KeyringUnavailable


def test_file_store_problems_fail_at_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    open_vault("file", state).set("a", "1")
    (state / "keyring.key").write_bytes(os.urandom(32))
    with pytest.raises(KeyringUnavailable, match="cannot be decrypted"):
        open_vault("file", state)


def test_file_store_problems_after_open(tmp_path: Path) -> None:
    state = tmp_path / "state"
    vault = open_vault("file", state)
    vault.set("a", "secret-value-never-in-messages")
    (state / "keyring.enc").chmod(0o644)
    for call in (lambda: vault.get("a"), lambda: vault.set("a", "2"), lambda: vault.delete("a")):
        with pytest.raises(KeyringUnavailable, match="chmod 0600") as info:
            call()
        assert "secret-value-never-in-messages" not in str(info.value)


@pytest.mark.secretservice
def test_secret_service_gone_after_open(
    secret_service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault = open_vault(SECRET_SERVICE, tmp_path / "state")
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/localai-authd-bus")
    with pytest.raises(KeyringUnavailable, match="could not write"):
        vault.set("a", "1")


def test_entries_use_service_and_name(tmp_path: Path) -> None:
    from localai_authd.keys.backend import EncryptedFileKeyring

    open_vault("file", tmp_path / "state").set("pepper", "p")
    kr = EncryptedFileKeyring()
    kr.keyring_dir = tmp_path / "state"
    assert kr.get_password(SERVICE, "pepper") == "p"
