"""Real processes for the distributed tests: one redis-server, Celery worker nodes."""

from __future__ import annotations

import os

import pytest

from segenc.distributed import make_app
from segenc.distributed.state import JobState, connect
from service.harness import WorkerNode
from service.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def storage(tmp_path_factory):
    """One storage directory, reachable through two different paths (as two machines would mount it)."""
    base = tmp_path_factory.mktemp("storage")
    root_a = base / "mount-a"
    root_a.mkdir()
    root_b = base / "mount-b"
    os.symlink(root_a, root_b)
    return root_a, root_b


def start_workers(workers: list[WorkerNode], timeout: float = 60) -> None:
    """Start every node, then wait until each has its heartbeat in and answers a Celery ping."""
    for w in workers:
        w.start()
    for w in workers:
        w.wait_online(timeout)


@pytest.fixture(scope="session")
def cluster(redis_server, storage, tmp_path_factory):
    """Two worker nodes with different names and different paths to the same storage."""
    logs = tmp_path_factory.mktemp("worker-logs")
    root_a, root_b = storage
    workers = [WorkerNode("w1", root_a, redis_url=redis_server.url, ping=True, log=logs / "w1.log"),
               WorkerNode("w2", root_b, redis_url=redis_server.url, ping=True, log=logs / "w2.log")]
    app = make_app(redis_server.url, root=root_a)
    try:
        start_workers(workers)
        yield app, workers
    finally:
        for w in workers:
            w.stop()


@pytest.fixture(scope="session")
def job_state(redis_server):
    return JobState(connect(redis_server.url))
