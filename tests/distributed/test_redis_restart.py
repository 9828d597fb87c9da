"""A job survives a Redis restart mid-job (append-only file + result backend retries), in its
chunks and in its finish."""

from __future__ import annotations

import contextlib
import os
import signal
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


@contextlib.contextmanager
def one_worker(tmp_path, name: str, concurrency: int):
    """A redis-server of its own and one worker node on it: (server, worker, encode), where
    ``encode(clip, ladder, chunk_seconds, on_progress)`` runs a job in a thread and returns
    (thread, outcome); outcome gets ``res`` or ``error``."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    root = tmp_path / "storage"
    root.mkdir()
    worker = WorkerNode(name, root, redis_url=server.url, concurrency=concurrency, ping=True,
                        log=tmp_path / "worker.log")
    try:
        app = make_app(server.url, root=root)
        worker.start().wait_online(60)

        def encode(clip, ladder, chunk_seconds, on_progress):
            outcome: dict = {}

            def run():
                runner = CeleryRunner(server.url, root, app=app, timeout=240)
                try:
                    outcome["res"] = segenc.encode(clip, tmp_path / "out", ladder, runner=runner,
                                                   chunk_seconds=chunk_seconds, on_progress=on_progress)
                except Exception as exc:  # reported by the test
                    outcome["error"] = exc

            th = threading.Thread(target=run)
            th.start()
            return th, outcome

        yield server, worker, encode
    finally:
        worker.stop()
        server.stop()


def test_job_survives_a_redis_restart(tmp_path):
    with one_worker(tmp_path, "survivor", 2) as (server, _worker, encode):
        clip = make_clip(tmp_path / "clip.mp4", width=1280, height=720, seconds=6.0)
        encoding = threading.Event()

        def on_progress(ev):
            if ev.kind == "frames":
                encoding.set()

        th, outcome = encode(clip, ("360p", "720p"), 2, on_progress)
        assert encoding.wait(120), "encoding never started"
        # Restart from this (long-lived) thread: redis-server dies with the thread that started it.
        server.stop()
        time.sleep(1.0)
        server.start()
        th.join(260)
        assert "error" not in outcome, outcome.get("error")
        for r in outcome["res"].renditions:
            assert checks.frame_count(tmp_path / "out" / r.path) == segenc.probe(clip).frames


@pytest.mark.parametrize("stage", ["probing", "concatenating"])
def test_a_step_waits_out_a_redis_restart(tmp_path, stage):
    """The main instance restarts its Redis with it (the chaos test caught a finish failing the
    whole job with 'Connection refused'). Here the worker is frozen (SIGSTOP) the moment its
    prepare (``probing``) or finish (``concatenating``) announces itself, Redis goes down, the
    worker thaws and meets the outage mid-step, and Redis comes back: the job ends done and exact,
    its end reported after the restart. At ``probing`` the prepare sends its chord just after the
    restart, which is where Celery's chord once lost its body (see rescue.py)."""
    with one_worker(tmp_path, f"held-at-{stage}", 1) as (server, worker, encode):
        clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=4.0)
        held = threading.Event()
        stages: list[tuple[str, float]] = []

        def on_progress(ev):
            if ev.kind == "stage" and ev.stage:
                if ev.stage == stage and not held.is_set():
                    os.killpg(worker.pid, signal.SIGSTOP)  # the step is on hold before it writes a thing
                    held.set()
                stages.append((ev.stage, time.monotonic()))

        th, outcome = encode(clip, ("240p", "360p"), 1, on_progress)
        try:
            assert held.wait(120), f"the job never reached {stage}"
            server.stop()
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
        time.sleep(2.0)  # the worker's step now meets a refused connection
        back = time.monotonic()
        server.start()
        th.join(260)
        assert "error" not in outcome, outcome.get("error")
        for r in outcome["res"].renditions:
            assert checks.frame_indices(tmp_path / "out" / r.path) == list(range(checks.frame_count(clip)))
        after = [s for s, t in stages if t > back]
        assert after[-1:] == ["done"] and "failed" not in after, stages
