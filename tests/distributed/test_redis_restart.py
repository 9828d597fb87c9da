"""A job survives a Redis restart mid-job (append-only file + result backend retries)."""

from __future__ import annotations

import threading
import time

import pytest

import segenc
from segenc.distributed import CeleryRunner, make_app
from service.harness import WorkerNode
from service.redis_server import RedisServer
from tests import checks
from tests.mediagen import make_clip

pytestmark = [pytest.mark.dist, pytest.mark.timeout(300)]


def test_job_survives_a_redis_restart(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    root = tmp_path / "storage"
    root.mkdir()
    worker = WorkerNode("survivor", root, redis_url=server.url, concurrency=2, ping=True, log=tmp_path / "worker.log")
    try:
        app = make_app(server.url, root=root)
        worker.start().wait_online(60)
        clip = make_clip(tmp_path / "clip.mp4", width=1280, height=720, seconds=6.0)
        encoding = threading.Event()
        outcome: dict = {}

        def on_progress(ev):
            if ev.kind == "frames":
                encoding.set()

        def run():
            runner = CeleryRunner(server.url, root, app=app, timeout=240)
            try:
                outcome["res"] = segenc.encode(clip, tmp_path / "out", ("360p", "720p"), runner=runner,
                                               chunk_seconds=2, on_progress=on_progress)
            except Exception as exc:  # reported below
                outcome["error"] = exc

        th = threading.Thread(target=run)
        th.start()
        assert encoding.wait(120), "encoding never started"
        # Restart from this (long-lived) thread: redis-server dies with the thread that started it.
        server.stop()
        time.sleep(1.0)
        server.start()
        th.join(260)
        assert "error" not in outcome, outcome.get("error")
        res = outcome["res"]
        for r in res.renditions:
            assert checks.frame_count(tmp_path / "out" / r.path) == segenc.probe(clip).frames
    finally:
        worker.stop()
        server.stop()
