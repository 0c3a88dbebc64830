"""The daemon object without a process: what its background tasks do when they fail."""

from __future__ import annotations

import asyncio
import logging

import pytest

from localai_authd import config
from localai_authd.daemon import Daemon


async def test_a_failing_background_task_is_logged_with_its_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    d = Daemon(config.Config(), None, {})
    done = asyncio.Event()

    async def boom() -> None:
        done.set()
        raise RuntimeError("the reload went wrong")

    with caplog.at_level(logging.ERROR, "localai_authd"):
        d._spawn(boom())
        await done.wait()
        for _ in range(10):  # the done-callback runs on a later loop iteration
            await asyncio.sleep(0)
    assert "background task" in caplog.text and "failed" in caplog.text
    assert "RuntimeError: the reload went wrong" in caplog.text
    assert not d._tasks  # and its reference is dropped
