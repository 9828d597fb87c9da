"""Straggler backups with real workers: one worker made slow (its pool process frozen 99% of the
time with SIGSTOP/SIGCONT), the other idle at the end: the backup wins, the output is exact, and
the slow original, once it runs again, writes nothing in place."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time

import pytest

import segenc
from segenc.distributed import CeleryRunner, make_app
from segenc.distributed.state import JobState
from service.harness import WorkerNode, start_all, stop_all
from service.redis_server import RedisServer
from tests import checks
from tests.mediagen import make_clip

pytestmark = [pytest.mark.dist, pytest.mark.timeout(240)]


class Throttle:
    """Freeze a worker node's pool processes except for ``run`` seconds in every ``period``."""

    def __init__(self, node: WorkerNode, run: float = 0.01, period: float = 1.0) -> None:
        self.node, self.run, self.period = node, run, period
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._cycle, daemon=True)

    def _signal(self, sig) -> None:
        for pid in self.node.children():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _cycle(self) -> None:
        while not self.stop.is_set():
            self._signal(signal.SIGSTOP)
            self.stop.wait(self.period - self.run)
            self._signal(signal.SIGCONT)
            time.sleep(self.run)
        self._signal(signal.SIGCONT)

    def __enter__(self) -> "Throttle":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)
        self._signal(signal.SIGCONT)


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own: the session's is shared with the ``cluster`` workers,
    whose other storage root would take this job's tasks and not find its files."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def test_a_backup_of_a_straggler_wins_and_the_loser_writes_nothing(own_redis, tmp_path):
    redis_server = own_redis
    root = tmp_path / "storage"
    root.mkdir()
    clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=6.0, audio=False)
    fast = WorkerNode("fast", root, redis_url=redis_server.url, concurrency=1, ping=True, log=tmp_path / "fast.log")
    slow = WorkerNode("slow", root, redis_url=redis_server.url, concurrency=1, ping=True, log=tmp_path / "slow.log")
    state = JobState.from_url(redis_server.url)
    app = make_app(redis_server.url, root=root)
    try:
        start_all([slow, fast], timeout=90)
        events = []
        with Throttle(slow):
            runner = CeleryRunner(redis_server.url, root, app=app, timeout=120)
            res = segenc.encode(clip, tmp_path / "out", ("360p",), runner=runner, chunk_seconds=1,
                                on_progress=events.append)
            out = tmp_path / "out" / "360p.mp4"
            digest = hashlib.sha256(out.read_bytes()).hexdigest()
            job_id = next(e.job_id for e in events)
            backups = state.backups(job_id)
            assert len(backups) == 1, backups
            (task, b), = backups.items()
            assert b["of_worker"] == "slow" and b["winner"] == "fast" and b["outcome"] == "won", b
            assert any(e.kind == "chunk_backup" and e.chunk_id == task for e in events)
        # The original runs freely again: it finds the task committed and stops, writing nothing.
        deadline = time.monotonic() + 60
        while "original" not in state.backups(job_id)[task]:
            assert time.monotonic() < deadline, state.backups(job_id)
            time.sleep(0.2)
    finally:
        stop_all([fast, slow])
    frames = segenc.probe(clip).frames
    assert res.rendition("360p").frames == frames == checks.frame_count(out)
    assert checks.frame_indices(out) == list(range(frames))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == digest
    assert not (root / "work" / job_id).exists()  # nothing written back at the chunks' paths
    assert state.attempts(job_id, task) == 1  # a backup is not an attempt: the cap is untouched
