"""authctl doctor's checks on real files, real sockets and /proc/net/tcp-format fixtures."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from localai_authd import config, doctor

# Only loopback sockets are ever opened here; "beyond loopback" comes from these texts.
TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000   107        0 1 1 0
   1: 0100007F:2CAB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0
   2: 0302010A:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0
"""
TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:2CAC 00000000000000000000000000000000:0000 0A 0
   1: 00000000000000000000000001000000:2CAD 00000000000000000000000000000000:0000 0A 0
   2: 0000000000000000FFFF00000100007F:2CAE 00000000000000000000000000000000:0000 0A 0
"""
LITTLE = sys.byteorder == "little"


@pytest.mark.skipif(not LITTLE, reason="the fixtures are written as a little-endian kernel")
def test_parse_proc_net_tcp_fixtures() -> None:
    assert doctor.parse_proc_net_tcp(TCP, v6=False) == [("0.0.0.0", 11434), ("127.0.0.1", 11435)]
    assert doctor.parse_proc_net_tcp(TCP6, v6=True) == [
        ("::", 11436),
        ("::1", 11437),
        ("::ffff:127.0.0.1", 11438),
    ]


def _cfg(*urls: str) -> config.Config:
    ups = [{"url": u, "prefix": f"/u{i}" if i else ""} for i, u in enumerate(urls)]
    return config.build({"upstream": ups}, "<test>")


@pytest.mark.skipif(not LITTLE, reason="the fixtures are written as a little-endian kernel")
def test_upstream_beyond_loopback_fails() -> None:
    socks = doctor.parse_proc_net_tcp(TCP, False) + doctor.parse_proc_net_tcp(TCP6, True)
    checks = doctor.check_upstreams(
        _cfg(
            "http://127.0.0.1:11434",  # also on 0.0.0.0: the bypass
            "http://127.0.0.1:11435",  # loopback only
            "http://[::1]:11436",  # also on ::
            "http://[::1]:11437",
            "http://127.0.0.1:11438",  # v4-mapped loopback is loopback
            "http://127.0.0.1:11439",  # nothing there
            "http://192.0.2.7:11434",  # elsewhere: cannot be checked from here
        ),
        socks,
    )
    assert [c.status for c in checks] == ["fail", "ok", "fail", "ok", "ok", "warn", "warn"]
    assert "0.0.0.0:11434" in checks[0].message and "OLLAMA_HOST=127.0.0.1" in checks[0].fix
    assert "[::]:11436" in checks[2].message


def test_the_real_proc_reader_sees_a_real_loopback_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert ("127.0.0.1", port) in doctor.listening()
        [check] = doctor.check_upstreams(_cfg(f"http://127.0.0.1:{port}"), doctor.listening())
        assert check.status == "ok", check
    [check] = doctor.check_upstreams(_cfg(f"http://127.0.0.1:{port}"), doctor.listening())
    assert check.status == "warn"  # closed: nothing listens any more


def test_the_real_proc_reader_sees_ipv6_loopback() -> None:
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with s:
        s.listen()
        port = s.getsockname()[1]
        assert ("::1", port) in doctor.listening()


def test_file_modes(tmp_path: Path) -> None:
    conf = tmp_path / "config.toml"
    conf.write_text("")
    conf.chmod(0o666)
    assert doctor.check_path("config", conf, forbid=0o022).status == "fail"
    assert "chmod 0644" in doctor.check_path("config", conf, forbid=0o022).fix
    conf.chmod(0o644)
    assert doctor.check_path("config", conf, forbid=0o022).status == "ok"
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    assert doctor.check_path("state", state, forbid=0o007, warn=0o070).status == "fail"
    state.chmod(0o750)
    assert doctor.check_path("state", state, forbid=0o007, warn=0o070).status == "warn"
    state.chmod(0o700)
    assert doctor.check_path("state", state, forbid=0o007, warn=0o070).status == "ok"
    missing = doctor.check_path("config", tmp_path / "nope", forbid=0o022, required=True)
    assert missing.status == "fail"
    link = tmp_path / "link"
    link.symlink_to(conf)
    assert doctor.check_path("config", link, forbid=0o022).status == "warn"


def test_files_of_a_config(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "keyring.key").write_text("x")
    (state / "keyring.key").chmod(0o644)
    sock_dir = tmp_path / "run"
    sock_dir.mkdir(mode=0o750)
    srv = socket.socket(socket.AF_UNIX)
    sock = sock_dir / "c.sock"
    srv.bind(str(sock))
    sock.chmod(0o666)
    try:
        cfg = config.build({"state": {"dir": str(state)}, "audit": {"file": "-"}}, "<t>")
        checks = {c.name.split(" /")[0]: c for c in doctor.check_files(cfg, None, sock)}
    finally:
        srv.close()
    assert checks["state dir"].status == "ok"
    assert checks["key file"].status == "fail"  # readable by others: the master key
    assert checks["socket dir"].status == "ok"
    assert checks["socket"].status == "fail"


def test_listeners(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    cfg = config.build(
        {
            "server": {"listen": ["127.0.0.1:11435"]},
            "listener": [
                {"address": "0.0.0.0:11443", "tls_cert": str(tmp_path / "c.pem"),
                 "tls_key": str(tmp_path / "k.pem")},
                {"address": "0.0.0.0:11444", "tls_cert": str(tmp_path / "c.pem"),
                 "tls_key": str(tmp_path / "k.pem"), "basic_auth": False,
                 "client_cert": "required", "client_ca": str(tmp_path / "c.pem")},
            ],
        },
        "<t>",
    )  # fmt: skip
    checks = doctor.check_listeners(cfg)
    assert [c.status for c in checks] == ["ok", "warn", "ok"]
    with_metrics = config.build({"metrics": {"listen": "127.0.0.1:9464"}}, "<t>")
    [*_, metrics] = doctor.check_listeners(with_metrics)
    assert (metrics.name, metrics.status) == ("metrics 127.0.0.1:9464", "ok")
    assert checks[0].message == "loopback, plain HTTP, Basic on"
    assert checks[2].message == ("BEYOND LOOPBACK, TLS, client certificates required, Basic off")


def test_clock() -> None:
    now = 1_800_000_000.0
    assert doctor.check_clock(now, (0, 0.01), 30).status == "ok"
    assert doctor.check_clock(now, (5, 16.0), 30).status == "warn"  # TIME_ERROR
    assert doctor.check_clock(now, (0, 60.0), 30).status == "warn"
    assert doctor.check_clock(1_000_000_000.0, (0, 0.0), 30).status == "fail"  # 2001


def test_the_real_kernel_clock_answers() -> None:
    if doctor.kernel_clock() is None:
        # Any user may read it on a machine; a container's seccomp filter (systemd-nspawn's
        # without CAP_SYS_TIME) refuses adjtimex(2) with EPERM. CI runs on the machine.
        pytest.skip("adjtimex(2) is refused here (a container?): run on the machine itself")
    assert doctor.kernel_clock() is not None


def test_keyring_and_credential(tmp_path: Path) -> None:
    cfg = config.build({"keyring": {"backend": "file"}, "state": {"dir": str(tmp_path)}}, "<t>")
    status = {"keyring_backend": "localai_authd.keys.backend.EncryptedFileKeyring"}
    assert doctor.check_keyring(cfg, status).status == "ok"
    assert doctor.check_keyring(cfg, {"keyring_backend": "keyrings.alt.file.PlaintextKeyring"}
                                ).status == "fail"  # fmt: skip
    assert doctor.check_keyring(config.Config(), None).status == "warn"  # auto, daemon down
    store = tmp_path / "credstore"
    store.mkdir()
    assert doctor.check_credential(cfg, store).status == "warn"  # neither exists
    (tmp_path / "keyring.key").write_text("k")
    assert doctor.check_credential(cfg, store).status == "warn"  # the fallback file
    (store / cfg.keyring_credential).write_text("sealed")
    assert doctor.check_credential(cfg, store).status == "ok"


def test_worst() -> None:
    ok, warn, fail = (doctor.Check("x", s, "") for s in ("ok", "warn", "fail"))
    assert doctor.worst([ok, warn]) == "warn" and doctor.worst([ok, fail, warn]) == "fail"
