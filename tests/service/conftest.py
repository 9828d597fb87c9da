"""A real main instance (redis-server + Celery worker + gunicorn) started with start_service.py."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from service.redis_server import free_port
from tests.mediagen import make_clip

REPO = Path(__file__).resolve().parents[2]


class Instance:
    def __init__(self, tmp_dir: Path, port: int, proc: subprocess.Popen, log: Path, token: str | None):
        self.tmp_dir, self.port, self.proc, self.log, self.token = tmp_dir, port, proc, log, token
        self.url = f"http://127.0.0.1:{port}"

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

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
    port = free_port(host)
    log = tmp_dir.parent / f"{tmp_dir.name}-service-{port}.log"
    args = [sys.executable, str(REPO / "start_service.py"), "--port", str(port), "--tmp-dir", str(tmp_dir),
            "--redis-port", "0", "--concurrency", "2"]
    if token:
        args += ["--api-token", token]
    if max_upload_mb:
        args += ["--max-upload-mb", str(max_upload_mb)]
    env = {k: v for k, v in os.environ.items() if k not in ("SEGENC_API_TOKEN", "SEGENC_REDIS_URL")}
    # Never touch the real user's connection file.
    env["SEGENC_RUNTIME_DIR"] = str(runtime_dir or tmp_dir.parent / f"{tmp_dir.name}-runtime")
    env.update(env_extra or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen(args + (extra or []), cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    inst = Instance(tmp_dir, port, proc, log, token)
    inst.url = f"http://{host}:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                if requests.get(inst.url + "/healthz", timeout=2).status_code == 200 and _worker_up(inst):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"service did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield inst
    finally:
        stop(proc)


def _worker_up(inst: Instance) -> bool:
    r = requests.get(inst.url + "/api/workers", headers=inst.headers(), timeout=5)
    return r.status_code == 200 and any(w["online"] for w in r.json()["workers"])


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    with running_instance(tmp_path_factory.mktemp("encoder")) as inst:
        yield inst


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("clips") / "small.mp4", width=640, height=360, seconds=3.0)
