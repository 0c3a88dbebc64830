"""The reload plan, without a process: what changes, what needs a restart, every problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localai_authd import config
from localai_authd.reload import (
    FileRead,
    Prepared,
    commit_all,
    plan,
    prepare_all,
    read_files,
    tls_files,
)

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def _cfg(tmp_path: Path, **sections: Any) -> config.Config:
    return config.build(sections, "test.toml")


def _tls_doc(tmp_path: Path, port: int = 11443, **kw: Any) -> dict[str, Any]:
    for name in ("cert.pem", "key.pem", "ca.pem", "ca2.pem"):
        if not (tmp_path / name).exists():
            (tmp_path / name).write_bytes(PEM)
    return {
        "address": f"127.0.0.1:{port}",
        "tls_cert": str(tmp_path / "cert.pem"),
        "tls_key": str(tmp_path / "key.pem"),
        "client_ca": str(tmp_path / "ca.pem"),
        "client_cert": "required",
        **kw,
    }


def test_nothing_changed_is_a_plan_without_changes(tmp_path: Path) -> None:
    old = _cfg(tmp_path, server={"listen": ["127.0.0.1:1"]})
    new = _cfg(tmp_path, server={"listen": ["127.0.0.1:1"]})
    p = plan(old, new, {})
    assert p.changes == () and p.restart_needed == () and p.problems == ()
    assert p.config == new


def test_settings_that_apply_now_are_named_and_applied(tmp_path: Path) -> None:
    old = _cfg(tmp_path)
    new = _cfg(tmp_path, tokens={"max_ttl": "2h"}, audit={"required": True}, log={"level": "debug"})
    p = plan(old, new, {})
    assert set(p.changes) == {"tokens", "audit_required", "log_level"}
    assert p.config.tokens.max_ttl == 7200 and p.config.audit_required
    assert p.restart_needed == () and p.problems == ()


def test_restart_only_settings_are_kept_and_reported(tmp_path: Path) -> None:
    old = _cfg(tmp_path, server={"listen": ["127.0.0.1:1"]})
    new = _cfg(
        tmp_path,
        server={"listen": ["127.0.0.1:2"], "drain_timeout": 5},
        control={"socket": "/tmp/other.sock"},
    )
    p = plan(old, new, {})
    assert set(p.restart_needed) == {"listen", "control_socket"}
    assert p.config.listen == old.listen and p.config.control_socket == old.control_socket
    assert p.changes == ("drain_timeout",) and p.config.drain_timeout == 5
    assert p.problems == ()


def test_same_sockets_with_new_tls_files_apply_now(tmp_path: Path) -> None:
    old = _cfg(tmp_path, listener=[_tls_doc(tmp_path)])
    new = _cfg(tmp_path, listener=[_tls_doc(tmp_path, client_ca=str(tmp_path / "ca2.pem"))])
    files = read_files(old, new)
    p = plan(old, new, files, files)
    assert p.restart_needed == () and p.problems == ()
    assert p.changes == ("listener 127.0.0.1:11443: client_ca",)
    assert p.config.listen == new.listen


def test_tls_on_an_existing_socket_needs_a_restart(tmp_path: Path) -> None:
    old = _cfg(tmp_path, listener=[{"address": "127.0.0.1:11443"}])
    new = _cfg(tmp_path, listener=[_tls_doc(tmp_path)])
    p = plan(old, new, read_files(old, new))
    assert p.restart_needed == ("listen",) and p.config.listen == old.listen


def test_a_file_with_new_content_is_named(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, listener=[_tls_doc(tmp_path)])
    before = read_files(cfg)
    (tmp_path / "ca.pem").write_bytes(PEM + PEM)
    p = plan(cfg, cfg, read_files(cfg), before)
    assert p.changes == (
        f"listener 127.0.0.1:11443: client_ca {tmp_path / 'ca.pem'} has new content",
    )
    assert p.files[tmp_path / "ca.pem"] != before[tmp_path / "ca.pem"]


def test_unreadable_or_non_pem_files_are_problems_naming_listener_key_and_path(
    tmp_path: Path,
) -> None:
    cfg = _cfg(tmp_path, listener=[_tls_doc(tmp_path)])
    (tmp_path / "key.pem").write_bytes(b"\x30\x82 DER, not PEM")
    (tmp_path / "ca.pem").unlink()
    p = plan(cfg, cfg, read_files(cfg))
    assert len(p.problems) == 2
    assert (
        f"listener 127.0.0.1:11443 tls_key: {tmp_path / 'key.pem'} is not a PEM file"
        in p.problems[0]
    )
    assert p.problems[1] == (
        f"listener 127.0.0.1:11443 client_ca: cannot read {tmp_path / 'ca.pem'}: "
        "No such file or directory"
    )


def test_tls_files_lists_every_file_of_every_tls_listener(tmp_path: Path) -> None:
    cfg = _cfg(
        tmp_path,
        server={"listen": ["127.0.0.1:1"]},
        listener=[_tls_doc(tmp_path, client_crl=str(tmp_path / "ca2.pem"))],
    )
    assert [(k, p.name) for _, k, p in tls_files(cfg)] == [
        ("tls_cert", "cert.pem"),
        ("tls_key", "key.pem"),
        ("client_ca", "ca.pem"),
        ("client_crl", "ca2.pem"),
    ]
    assert all(isinstance(v, FileRead) and v.pem for v in read_files(cfg).values())


def test_prepare_all_aborts_what_it_prepared_when_a_step_fails() -> None:
    events: list[str] = []

    def step(name: str) -> Prepared:
        events.append(f"prepare {name}")
        return Prepared(
            lambda: events.append(f"commit {name}"), lambda: events.append(f"abort {name}")
        )

    def broken() -> Prepared:
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        prepare_all([lambda: step("tls"), lambda: step("audit"), broken, lambda: step("log")])
    assert events == ["prepare tls", "prepare audit", "abort audit", "abort tls"]

    events.clear()
    commit_all(prepare_all([lambda: step("tls"), lambda: step("audit")]))
    assert events == ["prepare tls", "prepare audit", "commit tls", "commit audit"]
