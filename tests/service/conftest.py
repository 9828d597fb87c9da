"""A real main instance (redis-server + Celery worker + gunicorn) started with start_service.py."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from service.harness import REPO, MainInstance, WorkerNode  # noqa: F401  (re-exported for the tests)
from tests.mediagen import make_clip


class Instance(MainInstance):
    """The harness's main instance plus the HTTP helpers the tests use (through requests)."""

    def get(self, path: str, **kw):
        return requests.get(self.url + path, headers={**self.headers(), **kw.pop("headers", {})}, timeout=30, **kw)

    def upload(self, path: Path, name: str | None = None, **data):
        with open(path, "rb") as f:
            return requests.post(self.url + "/api/upload", headers=self.headers(), timeout=120,
                                 files={"file": (name or path.name, f)}, data=data)

    def wait_done(self, job_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            st = self.get(f"/api/status/{job_id}").json()
            if st["status"] in ("done", "failed", "cancelled"):
                return st
            time.sleep(0.3)
        raise TimeoutError(f"job {job_id} not finished: {st}")


@contextmanager
def running_instance(tmp_dir: Path, *, token: str | None = None, max_upload_mb: int | None = None,
                     extra: list[str] | None = None, runtime_dir: Path | None = None, host: str = "127.0.0.1",
                     env_extra: dict[str, str] | None = None):
    """A main instance on a free port, up (healthz 200, a worker online) until the block ends."""
    env = {**os.environ, **env_extra} if env_extra else None
    with Instance(tmp_dir, host=host, token=token, concurrency=2, max_upload_mb=max_upload_mb,
                  runtime_dir=runtime_dir, args=extra or (), env=env) as inst:
        yield inst


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    with running_instance(tmp_path_factory.mktemp("encoder")) as inst:
        yield inst


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "small.mp4", width=640, height=360, seconds=3.0)
