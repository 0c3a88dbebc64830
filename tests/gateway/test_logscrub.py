"""Log records of ours and aiohttp's never carry a credential into the journal."""

from __future__ import annotations

import logging

import pytest

from localai_authd.gateway import logscrub
from localai_authd.keys import format as keyformat

KEY = keyformat.mint(keyformat.new_kid())


@pytest.mark.parametrize(
    "name", ["localai_authd", "localai_authd.audit", "localai_authd.control", "aiohttp.server"]
)
def test_messages_and_tracebacks_are_redacted(caplog: pytest.LogCaptureFixture, name: str) -> None:
    logscrub.install()
    logscrub.install()  # idempotent: one filter each
    log = logging.getLogger(name)
    assert sum(isinstance(f, logscrub.Scrub) for f in log.filters) == 1
    with caplog.at_level(logging.DEBUG):
        log.info("presented %s on %s", KEY, "/api/tags")
        try:
            raise ValueError(f"bad key {KEY}")
        except ValueError:
            log.exception("failed for %s", f"/x?key={KEY}")
    assert KEY not in caplog.text and KEY[9:40] not in caplog.text
    assert "[redacted]" in caplog.text and "/api/tags" in caplog.text
    if name.startswith("aiohttp"):
        assert "details withheld" in caplog.text  # aiohttp's exceptions quote raw bytes
    else:
        assert "Traceback" in caplog.text  # ours keep their traceback, redacted


def test_records_without_credentials_are_left_as_they_are(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logscrub.install()
    with caplog.at_level(logging.INFO):
        logging.getLogger("localai_authd").info("serving on %s", "127.0.0.1:11435")
    rec = caplog.records[-1]
    assert rec.getMessage() == "serving on 127.0.0.1:11435" and rec.args
