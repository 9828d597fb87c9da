"""Real processes for the distributed tests: one redis-server, Celery worker nodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from segenc.distributed import make_app
from segenc.distributed.state import JobState, connect
from service.redis_server import RedisServer

REPO = Path(__file__).resolve().parents[2]


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


class Worker:
    def __init__(self, name: str, root: Path, url: str, concurrency: int = 1, log: Path | None = None):
        self.name = name
        self.log = open(log, "wb") if log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "start_service.py"), "--worker-name", name, "--tmp-dir", str(root),
             "--redis-url", url, "--concurrency", str(concurrency)],
            cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def children(self) -> list[int]:
        import psutil

        try:
            return [c.pid for c in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.log is not subprocess.DEVNULL:
            self.log.close()


def wait_for_workers(app, names: list[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        replies = app.control.inspect(timeout=1).ping() or {}
        if all(any(node.startswith(n + "@") for node in replies) for n in names):
            return
        time.sleep(0.5)
    raise TimeoutError(f"workers {names} did not come up")


@pytest.fixture(scope="session")
def cluster(redis_server, storage, tmp_path_factory):
    """Two worker nodes with different names and different paths to the same storage."""
    logs = tmp_path_factory.mktemp("worker-logs")
    root_a, root_b = storage
    workers = [Worker("w1", root_a, redis_server.url, log=logs / "w1.log"),
               Worker("w2", root_b, redis_server.url, log=logs / "w2.log")]
    app = make_app(redis_server.url, root=root_a)
    try:
        wait_for_workers(app, ["w1", "w2"])
        yield app, workers
    finally:
        for w in workers:
            w.stop()


@pytest.fixture(scope="session")
def job_state(redis_server):
    return JobState(connect(redis_server.url))
