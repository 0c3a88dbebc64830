"""Structure checks of packaging/: cheap, no build, no boot (packaging/test/e2e.sh does those).

They hold the Debian package, the units, the man pages and the code to the same names and
versions, so that a rename in one place cannot silently break the installed service.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from localai_authd import __version__, config
from localai_authd.control.client import DEFAULT_SOCKET

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "packaging"
DEBIAN = PKG / "debian"
SERVICE = PKG / "systemd" / "localai-authd.service"
SOCKET = PKG / "systemd" / "localai-authd.socket"


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values...]}} (keys may repeat, unlike INI)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        assert not line.endswith("\\"), f"{path.name}:{n}: keep each setting on one line"
        if line.startswith("["):
            assert line.endswith("]"), f"{path.name}:{n}: bad section header"
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"{path.name}:{n}: setting outside a section"
        key, sep, value = line.partition("=")
        assert sep and re.fullmatch(r"[A-Za-z]+", key), f"{path.name}:{n}: not KEY=VALUE"
        current.setdefault(key, []).append(value)
    return sections


def one(section: dict[str, list[str]], key: str) -> str:
    values = section.get(key, [])
    assert len(values) == 1, f"{key}: {values}"
    return values[0]


def pyproject_version() -> str:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    version = data["project"]["version"]
    assert isinstance(version, str)
    return version


def test_debian_changelog_version_matches_pyproject() -> None:
    head = (DEBIAN / "changelog").read_text().splitlines()[0]
    m = re.fullmatch(r"localai-authd \(([^)]+)\) \S+; urgency=\w+", head)
    assert m, head
    # A native package (3.0 (native)): the Debian version is the upstream version exactly.
    assert m.group(1) == pyproject_version() == __version__
    assert (DEBIAN / "source" / "format").read_text().strip() == "3.0 (native)"


def test_service_is_notify_with_watchdog_reload_and_restart() -> None:
    s = unit(SERVICE)["Service"]
    assert one(s, "Type") == "notify"
    assert one(s, "NotifyAccess") == "main"
    assert re.fullmatch(r"\d+s", one(s, "WatchdogSec"))
    assert one(s, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(s, "Restart") == "on-failure"
    assert one(s, "ExecStart") == "/usr/bin/localai-authd --config /etc/localai-authd/config.toml"
    # The stop timeout must leave room for the default drain of streams in flight.
    assert int(one(s, "TimeoutStopSec").rstrip("s")) > config.Config().drain_timeout
    # Two sockets per stream: 1024 descriptors would refuse streams at about 500.
    assert int(one(s, "LimitNOFILE")) >= 8192


def test_service_never_uses_directives_that_break_the_daemon() -> None:
    s = unit(SERVICE)["Service"]
    # PrivateUsers= maps other users' uids to 65534 for SO_PEERCRED: the admin group breaks.
    assert "PrivateUsers" not in s
    assert "DynamicUser" not in s  # the sysusers.d user owns state across upgrades
    # The daemon chgrps its control socket: chown must survive the @privileged deny list.
    filters = s["SystemCallFilter"]
    assert "~@privileged @resources" in filters
    assert filters.index("@chown") > filters.index("~@privileged @resources")


def test_service_directories_users_and_credential_agree_with_the_code() -> None:
    s = unit(SERVICE)["Service"]
    defaults = config.Config()
    assert f"/var/lib/{one(s, 'StateDirectory')}" == str(defaults.state_dir)
    assert f"/run/{one(s, 'RuntimeDirectory')}" == str(defaults.control_socket.parent)
    assert str(defaults.control_socket) == DEFAULT_SOCKET
    assert one(s, "StateDirectoryMode") == "0700"
    # Admin-group members must traverse /run/localai-authd to reach the socket.
    assert one(s, "RuntimeDirectoryMode") == "0750"
    assert one(s, "Group") == defaults.admin_group
    # ...and its own group, for files meant for the daemon alone (a TLS key, 0640).
    assert one(s, "SupplementaryGroups") == one(s, "User")
    name, _, path = one(s, "LoadCredentialEncrypted").partition(":")
    assert name == defaults.keyring_credential
    assert path == f"/etc/credstore.encrypted/{name}"
    postinst = (DEBIAN / "localai-authd.postinst").read_text()
    assert f"CRED_NAME={name}\n" in postinst
    assert "CRED_DIR=/etc/credstore.encrypted\n" in postinst
    assert name in (DEBIAN / "localai-authd.postrm").read_text()


def test_sysusers_declares_the_daemon_user_and_the_admin_group() -> None:
    lines = [
        line.split()
        for line in (DEBIAN / "localai-authd.sysusers").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    s = unit(SERVICE)["Service"]
    user, group = one(s, "User"), one(s, "Group")
    assert ["u", user] == lines[0][:2]
    assert ["g", group, "-"] in lines
    assert ["m", user, group] in lines  # so that the daemon may chgrp its socket


def test_socket_unit_listens_where_the_daemon_would() -> None:
    u = unit(SOCKET)
    assert u["Socket"]["ListenStream"] == [config.DEFAULT_LISTEN]
    assert u["Install"]["WantedBy"] == ["sockets.target"]
    assert "Service" not in u["Socket"]  # the same-named service gets the socket


def test_every_hardening_group_is_explained() -> None:
    """Each block of settings in [Service] is preceded by a comment saying why."""
    text = SERVICE.read_text().split("[Service]", 1)[1].split("[Install]", 1)[0]
    for block in re.split(r"\n\s*\n", text.strip()):
        first = block.strip().splitlines()[0]
        assert first.startswith("#"), f"uncommented block starting {first!r}"


def test_package_depends_on_what_the_unit_runs() -> None:
    control = (DEBIAN / "control").read_text()
    depends = control.split("\nDepends:", 1)[1].split("\nDescription:", 1)[0]
    assert "procps" in depends  # /bin/kill for ExecReload=
    assert "python3 (>= 3.11~)" in depends and "python3 (<< 3.12)" in depends
    relations = control.split("\nDescription:", 1)[0]
    assert "python3-aiohttp" not in relations  # Debian 12's accepts smuggled requests


def test_installed_config_switch_has_exactly_one_target() -> None:
    # debian/rules turns this one line into `backend = "file"` for the installed conffile.
    lines = (PKG / "config.toml").read_text().splitlines()
    assert lines.count('#backend = "auto"') == 1


def test_build_requirements_are_hash_pinned() -> None:
    lock = (DEBIAN / "build-requirements.lock").read_text()
    assert re.search(r"^setuptools==[\d.]+ \\$", lock, re.M)
    assert "--hash=sha256:" in lock


def test_authctl_man_page_documents_every_command_and_option() -> None:
    from localai_authd.cli import cli

    page = (PKG / "man" / "authctl.1.scd").read_text()
    for name, command in cli.commands.items():
        assert f"\n*{name}*" in page, f"authctl {name} is not in authctl(1)"
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert f"*{opt}*" in page, f"authctl {name} {opt} is not in authctl(1)"
    for param in cli.params:
        for opt in param.opts:
            if opt.startswith("--") and opt != "--help":
                assert f"*{opt}*" in page, f"authctl {opt} is not in authctl(1)"


def test_daemon_man_page_documents_every_option() -> None:
    from localai_authd.cmdline import parser as _parser

    page = (PKG / "man" / "localai-authd.8.scd").read_text()
    for action in _parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                assert f"*{opt}*" in page, f"localai-authd {opt} is not in localai-authd(8)"
