"""A job whose message was lost (kombu's Redis transport can drop one a worker took just as
Redis went away) is not left hanging: the watchdog sends the lost task again, and then the
finish, which Celery's chord can no longer send (see segenc/distributed/rescue.py)."""

from __future__ import annotations

import json
import threading
import time

import pytest

import segenc
from segenc.distributed import CeleryRunner, make_app
from segenc.distributed.state import JobState, connect
from service.harness import WorkerNode
from service.redis_server import RedisServer
from tests import checks
from tests.mediagen import make_clip

pytestmark = [pytest.mark.dist, pytest.mark.timeout(240)]


def test_a_lost_task_message_is_sent_again_and_the_job_finishes(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    root = tmp_path / "storage"
    root.mkdir()
    worker = WorkerNode("rescuer", root, redis_url=server.url, concurrency=1, ping=True, log=tmp_path / "worker.log")
    try:
        client = connect(server.url)
        state = JobState(client)
        app = make_app(server.url, root=root)
        clip = make_clip(tmp_path / "clip.mp4", width=640, height=360, seconds=4.0)
        job: list[str] = []
        outcome: dict = {}

        def run():
            runner = CeleryRunner(server.url, root, app=app, timeout=180)
            try:
                outcome["res"] = segenc.encode(clip, tmp_path / "out", ("240p",), runner=runner, chunk_seconds=1,
                                               on_progress=lambda ev: job.append(ev.job_id))
            except Exception as exc:  # reported by the test
                outcome["error"] = exc

        th = threading.Thread(target=run)
        th.start()
        deadline = time.monotonic() + 60
        while not (job and state.field(job[0], "dispatched_at")):  # no worker yet: the chord sits queued
            assert time.monotonic() < deadline, "the job was never dispatched"
            time.sleep(0.05)
        job_id = job[0]
        lost = 0
        for key in client.scan_iter("celery*"):
            if client.type(key) != "list":
                continue
            for raw in client.lrange(key, 0, -1):
                if json.loads(raw)["headers"]["id"] == f"{job_id}:s0001-240p":
                    lost += client.lrem(key, 1, raw)
        assert lost == 1, "the chunk's message was not in its queue"
        started = time.monotonic()
        worker.start().wait_online(60)
        th.join(200)
        assert "error" not in outcome, outcome.get("error")
        assert outcome["res"].renditions[0].frames == segenc.probe(clip).frames
        path = tmp_path / "out" / outcome["res"].renditions[0].path
        assert checks.frame_indices(path) == list(range(checks.frame_count(clip)))
        # The lost chunk first, then the finish the chord could not send; each once.
        assert json.loads(state.field(job_id, "resent")) == ["s0001-240p", "finish"]
        assert time.monotonic() - started < 60
    finally:
        worker.stop()
        server.stop()
