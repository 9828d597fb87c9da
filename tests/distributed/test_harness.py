"""service.harness, the one way tests and benchmarks start and stop worker nodes."""

from __future__ import annotations

import os

import pytest

from segenc.distributed import JobState
from service.harness import StartupError, WorkerNode

pytestmark = [pytest.mark.dist, pytest.mark.timeout(180)]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_kill_restart_and_stop_a_worker_node(redis_server, tmp_path):
    state = JobState.from_url(redis_server.url)
    w = WorkerNode("harness_w", tmp_path / "root", redis_url=redis_server.url, concurrency=1, ping=True,
                   log=tmp_path / "w.log")
    try:
        w.start().wait_online(60)
        first, pool = w.pid, w.children()
        assert pool, "a prefork worker node that answers a ping has its pool processes"
        assert int(state.workers()["harness_w"]["pid"]) == first

        w.kill()  # a crash: the heartbeat stays behind in Redis for a while
        assert all(_gone(p) for p in [first, *pool])
        assert "harness_w" in state.workers()
        w.restart(60)  # online again only once the new process has beaten, not on the stale heartbeat
        assert w.pid != first
        assert int(state.workers()["harness_w"]["pid"]) == w.pid

        pids = [w.pid, *w.children()]
        assert w.stop() is not None
        assert all(_gone(p) for p in pids)
        assert "harness_w" not in state.workers()  # a clean stop takes its heartbeat away
    finally:
        w.stop()  # whatever failed above, no worker outlives the test

def test_a_node_that_exits_early_is_reported_with_its_log(tmp_path):
    w = WorkerNode("lonely", tmp_path / "root", redis_url="redis://127.0.0.1:1/0", log=tmp_path / "w.log",
                   env=dict(os.environ, SEGENC_RUNTIME_DIR=str(tmp_path / "rt")))
    with pytest.raises(StartupError, match="exited") as err:
        w.start().wait_online(60)
    assert "127.0.0.1:1" in str(err.value) or "redis" in str(err.value).lower()
    w.stop()
