"""Config: every key validated, every problem reported at once, every key documented."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from localai_authd import config
from localai_authd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "packaging" / "config.toml"


def test_example_config_is_valid_and_documents_every_key() -> None:
    cfg = config.load(EXAMPLE)
    assert cfg.listen[0].port == 11435
    text = EXAMPLE.read_text()
    sections: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"^#?\[\[?(\w+)\]\]?$", line.strip())
        if m:
            current = m.group(1)
            sections.setdefault(current, set())
            continue
        m = re.match(r"^#(\w+) = ", line)
        if m and current:
            sections[current].add(m.group(1))
    for section, keys in config.SCHEMA.items():
        assert section in sections, f"[{section}] missing from {EXAMPLE}"
        assert set(keys) == sections[section], section


def test_every_problem_is_reported_at_once() -> None:
    doc = {
        "server": {
            "listen": ["10.1.2.3:80", "127.0.0.1:99999"],
            "max_body_bytes": -1,
            "drain_timeout": "soon",
            "lisen": 1,
        },
        "upstream": [{"url": "ftp://x"}, {"url": "http://user:pw@h:1"}],
        "keyring": {"backend": "rm -rf"},
        "bogus": {},
    }
    with pytest.raises(ConfigError) as e:
        config.build(doc, "test.toml")
    text = "\n".join(e.value.problems)
    for needle in (
        "port must be 1-65535",
        "max_body_bytes",
        "drain_timeout",
        "did you mean 'listen'",
        "ftp://x",
        "no credentials in the URL",
        "[keyring] backend",
        "unknown section 'bogus'",
    ):
        assert needle in text, needle
    assert "pw" not in text


def test_non_loopback_listener_is_refused_with_the_fix() -> None:
    with pytest.raises(ConfigError) as e:
        config.build({"server": {"listen": ["0.0.0.0:11435"]}}, "x")
    assert "is not loopback and has no TLS" in e.value.problems[0]
    assert "tls_cert" in e.value.problems[0] and "127.0.0.1" in e.value.problems[0]
    ok = config.build({"server": {"listen": ["[::1]:11435", "127.0.0.2:1"]}}, "x")
    assert all(x.is_loopback for x in ok.listen)


def test_flags_override_the_file() -> None:
    cfg = config.build(
        {"server": {"listen": ["127.0.0.1:1"]}},
        "x",
        {"listen": ["127.0.0.1:2"], "upstream": "http://127.0.0.1:9/", "state_dir": "/tmp/s"},
    )
    assert [x.port for x in cfg.listen] == [2]
    assert cfg.upstreams[0].url == "http://127.0.0.1:9" and str(cfg.state_dir) == "/tmp/s"
    with pytest.raises(ConfigError, match="--upstream"):
        config.build({}, "x", {"upstream": "nope"})


def test_several_upstreams_need_distinct_prefixes() -> None:
    with pytest.raises(ConfigError, match="more than one upstream"):
        config.build({"upstream": [{"url": "http://a:1"}, {"url": "http://b:1"}]}, "x")
    cfg = config.build(
        {"upstream": [{"url": "http://a:1"}, {"url": "http://b:1", "prefix": "/gpu2"}]}, "x"
    )
    assert [u.prefix for u in cfg.upstreams] == ["", "/gpu2"]


def _daemon(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "localai_authd.daemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_cli(tmp_path: Path) -> None:
    ok = _daemon("--config", str(EXAMPLE), "--check-config", "--keyring-backend", "file")
    assert ok.returncode == 0 and "configuration is valid" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text('[server]\nlisten = ["0.0.0.0:1"]\nmax_body_bytes = "big"\n')
    r = _daemon("--config", str(bad), "--check-config")
    assert r.returncode == 78
    assert str(bad) in r.stderr and "is not loopback" in r.stderr and "max_body_bytes" in r.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\n")
    r = _daemon("--config", str(broken), "--check-config")
    assert r.returncode == 78 and "not valid TOML" in r.stderr
    r = _daemon("--config", str(tmp_path / "missing.toml"), "--check-config")
    assert r.returncode == 78 and "no such file" in r.stderr


def test_tls_files_from_a_systemd_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "tls.pem").write_text("x")
    (creds / "tls.key").write_text("x")
    doc = {
        "listener": [
            {
                "address": "127.0.0.1:11443",
                "tls_cert": "credential:tls.pem",
                "tls_key": "credential:tls.key",
            }
        ]
    }
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        config.build(doc, "x")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    tls = config.build(doc, "x").listen[0].tls
    assert tls is not None and tls.cert == creds / "tls.pem" and tls.key == creds / "tls.key"


def test_listener_rules_span_keys() -> None:
    problems = []
    for doc in (
        {"listener": [{"address": "127.0.0.1:1", "tls_cert": "/nonexistent"}]},
        {"listener": [{"address": "127.0.0.1:1", "client_cert": "required"}]},
        {"listener": [{"tls_cert": "/x", "tls_key": "/y"}]},
        {"server": {"listen": ["127.0.0.1:5"]}, "listener": [{"address": "127.0.0.1:5"}]},
        {"tokens": {"default_ttl": "2d", "max_ttl": "1d"}},
    ):
        with pytest.raises(ConfigError) as e:
            config.build(doc, "x")
        problems.append(" ".join(e.value.problems))
    assert "give both tls_cert and tls_key" in problems[0]
    assert "client certificates need TLS" in problems[1]
    assert "address is required" in problems[2]
    assert "configured more than once" in problems[3]
    assert "default_ttl is longer than max_ttl" in problems[4]


def test_every_section_has_one_validator_and_every_validator_a_section() -> None:
    assert set(config.SECTIONS) == set(config.SCHEMA)


def test_a_section_validator_appends_to_the_shared_problem_list() -> None:
    problems: list[str] = []
    d = config.Draft({"tokens": {"default_ttl": "2h", "max_ttl": "1h", "lewey": 1}}, {}, problems)
    fields = config.SECTIONS["tokens"](d)
    assert fields["tokens"].max_ttl == 3600.0
    assert any("did you mean 'leeway'" in p for p in problems)
    assert any("default_ttl is longer than max_ttl" in p for p in problems)
    # Reading a table twice (several validators may) reports its problems once.
    d.table("tokens")
    assert len(problems) == 2


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1])
def test_durations_are_finite_and_not_negative(value: float) -> None:
    with pytest.raises(ConfigError, match=r"\[server\] drain_timeout"):
        config.build({"server": {"drain_timeout": value}}, "x")


def test_audit_required_is_checked_by_check_config(tmp_path: Path) -> None:
    assert config.build({"audit": {"required": True}}, "x").audit_required
    assert not config.build({}, "x").audit_required  # default: serve as before
    bad = tmp_path / "bad.toml"
    bad.write_text('[audit]\nrequired = "yes"\n')
    r = _daemon("--config", str(bad), "--check-config")
    assert r.returncode == 78 and "[audit] required: expected true or false" in r.stderr
