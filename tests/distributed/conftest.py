"""Real processes for the distributed tests: one redis-server, Celery worker nodes."""

from __future__ import annotations

import os

import pytest

from segenc.distributed import make_app
from segenc.distributed.state import JobState, connect
from service.harness import WorkerNode, start_all, stop_all
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


@pytest.fixture(scope="session")
def cluster(redis_server, storage, tmp_path_factory):
    """Two worker nodes with different names and different paths to the same storage."""
    logs = tmp_path_factory.mktemp("worker-logs")
    root_a, root_b = storage
    workers = [WorkerNode("w1", root_a, redis_url=redis_server.url, ping=True, log=logs / "w1.log"),
               WorkerNode("w2", root_b, redis_url=redis_server.url, ping=True, log=logs / "w2.log")]
    app = make_app(redis_server.url, root=root_a)
    try:
        start_all(workers, timeout=60)
        yield app, workers
    finally:
        stop_all(workers)


@pytest.fixture(scope="session")
def job_state(redis_server):
    return JobState(connect(redis_server.url))
