"""The usage file is whole after any two writes that overlap.

The periodic flush writes in a worker thread; cancelling it (the daemon stopping) does not
stop that thread, and the final flush on stop then wrote the same temporary file at the
same time: one write truncated the other's file, the first rename published it, the second
writer's bytes landed on top. The daemon exited with a usage.json that the next start could
not read (moved aside: all usage history gone).
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

from localai_authd.usage import UsageStore
from tests.test_usage import rec


def test_overlapping_saves_leave_one_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    stores = [UsageStore(path) for _ in range(2)]
    for i in range(400):  # one store grows: the two documents differ in length
        stores[0].record(rec(f"kid{i}"))
    docs = {s._encode() for s in stores}
    for _ in range(150):  # bounded; without the fix a torn file shows within a few dozen
        threads = [threading.Thread(target=s.save) for s in stores]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert path.read_bytes() in docs
    assert sorted(p.name for p in tmp_path.iterdir()) == ["usage.json"]


async def test_stop_during_a_periodic_flush_leaves_the_newest_counts(tmp_path: Path) -> None:
    path = tmp_path / "usage.json"
    for round_ in range(25):
        u = UsageStore(path)
        u.load()
        u.start(interval=0.0005)
        for i in range(200):
            u.record(rec(f"k{i % 50}", client=f"10.0.0.{round_}"))
            if i % 20 == 0:
                await asyncio.sleep(0.0005)
        await u.stop()
        fresh = UsageStore(path)
        fresh.load()  # an unreadable file would be moved aside and load as empty
        assert fresh.keys == json.loads(json.dumps(u.keys)), round_
        assert sum(e["requests"] for e in fresh.keys.values()) == 200 * (round_ + 1)
    assert not path.with_name(path.name + ".corrupt").exists()
