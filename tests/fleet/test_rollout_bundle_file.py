"""Regression: the controller's flash threads shared one bundle file, and a thread that found it not yet recorded
wrote it again (truncating it) while another flash was reading it, so that flash offered a bundle with too few
chunks (``1 chunks cannot hold 122880 bytes``), which the device refused. Found by ``benchmarks/rollout_sim.py``:
a bundle file handed out is complete and is never rewritten."""

from __future__ import annotations

import os
import threading
import time

from edgeops.fleet.rollout import RolloutController


class SlowStore:
    """Just ``bundle(sha)``, slow enough that several threads ask before the first one is done."""

    def __init__(self, data: bytes):
        self.data = data
        self.calls = 0

    def bundle(self, sha: str) -> bytes:
        self.calls += 1
        time.sleep(0.05)
        return self.data


def test_flash_threads_asking_for_one_bundle_at_once_each_read_it_whole():
    data = os.urandom(300_000)
    store = SlowStore(data)
    c = RolloutController(store, "demo", "mqtt://127.0.0.1:1", holder="t")
    try:
        start = threading.Barrier(8)
        seen: list[tuple[int, bytes]] = []

        def flash() -> None:
            start.wait()
            path = c._bundle_path("ab" * 32)
            with open(path, "rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                time.sleep(0.1)  # a flash reads its chunks over a while
                seen.append((inode, fh.read()))

        threads = [threading.Thread(target=flash) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(seen) == 8 and all(got == data for _, got in seen)
        assert len({inode for inode, _ in seen}) == 1 and store.calls == 1  # written once, for every flash
    finally:
        c.close()
