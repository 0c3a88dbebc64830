"""[metrics]: off by default, loopback-only unless it has TLS, every problem named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localai_authd import config
from localai_authd.errors import ConfigError


def _problems(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as e:
        config.build(doc, "<t>")
    return e.value.problems


def test_off_unless_listen_is_set() -> None:
    assert config.build({}, "<t>").metrics.listen is None
    cfg = config.build({"metrics": {"listen": "127.0.0.1:9464"}}, "<t>")
    assert str(cfg.metrics.listen) == "127.0.0.1:9464" and cfg.metrics.tls is None
    assert str(config.build({"metrics": {"listen": "[::1]:9464"}}, "<t>").metrics.listen) == (
        "[::1]:9464"
    )


def test_beyond_loopback_needs_tls(tmp_path: Path) -> None:
    [p] = _problems({"metrics": {"listen": "0.0.0.0:9464"}})
    assert "[metrics] listen = 0.0.0.0:9464 is not loopback and has no TLS" in p
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("x")
    cfg = config.build(
        {"metrics": {"listen": "0.0.0.0:9464", "tls_cert": str(cert), "tls_key": str(key)}},
        "<t>",
    )
    assert cfg.metrics.tls is not None and cfg.metrics.tls.client_cert == "off"
    cfg = config.build(
        {
            "metrics": {
                "listen": "0.0.0.0:9464",
                "tls_cert": str(cert),
                "tls_key": str(key),
                "client_ca": str(cert),
            }
        },
        "<t>",
    )
    assert cfg.metrics.tls is not None and cfg.metrics.tls.client_cert == "required"


def test_every_problem_named(tmp_path: Path) -> None:
    problems = _problems(
        {"metrics": {"listen": "nowhere", "tls_cert": str(tmp_path / "missing"), "colour": 1}}
    )
    text = "\n".join(problems)
    assert "[metrics] listen" in text
    assert "unknown key 'colour'" in text
    assert "give both tls_cert and tls_key" in text
    assert any("set listen" in p for p in _problems({"metrics": {"client_ca": "/x"}}))
