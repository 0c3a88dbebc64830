"""The daemon's command line before anything starts: bad --config paths, --check-config."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from localai_authd.errors import EXIT_CONFIG

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "packaging" / "config.toml"


def daemon(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON_KEYRING")}
    return subprocess.run(
        [sys.executable, "-m", "localai_authd.daemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **env},
    )


def one_line(r: subprocess.CompletedProcess[str], code: int) -> str:
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("localai-authd: "), r.stderr
    return lines[0]


def test_config_naming_a_directory(tmp_path: Path) -> None:
    for extra in ([], ["--check-config"]):
        line = one_line(daemon("--config", str(tmp_path), *extra), EXIT_CONFIG)
        assert line == (
            f"localai-authd: invalid configuration in {tmp_path}: is a directory; "
            "give --config the TOML file"
        )


def test_config_that_is_not_utf8(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes("[server]\n# café\n".encode("latin-1"))
    for extra in ([], ["--check-config"]):
        line = one_line(daemon("--config", str(latin1), *extra), EXIT_CONFIG)
        assert line == (
            f"localai-authd: invalid configuration in {latin1}: not valid TOML: not UTF-8 "
            "text (byte 0xe9 at offset 14)"
        )


def test_check_config_names_the_keyring_backend_and_opens_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    r = daemon("--config", str(EXAMPLE), "--check-config", "--keyring-backend", "file",
               "--state-dir", str(state))  # fmt: skip
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout == (
        f"{EXAMPLE}: configuration is valid; keyring backend "
        "localai_authd.keys.backend.EncryptedFileKeyring\n"
    )
    assert list(state.iterdir()) == []  # no keyring file, no key file: nothing created


def test_check_config_refuses_an_untrusted_backend(tmp_path: Path) -> None:
    conf = tmp_path / "plain.toml"
    conf.write_text('[keyring]\nbackend = "keyrings.alt.file.PlaintextKeyring"\n')
    line = one_line(daemon("--config", str(conf), "--check-config"), EXIT_CONFIG)
    assert line.startswith(f"localai-authd: {conf}: keyring: [keyring] backend = keyrings.alt")
    assert "plaintext" in line

    line = one_line(
        daemon("--check-config", PYTHON_KEYRING_BACKEND="keyring.backends.null.Keyring"),
        EXIT_CONFIG,
    )
    assert "PYTHON_KEYRING_BACKEND = keyring.backends.null.Keyring" in line
    assert "stores nothing" in line
