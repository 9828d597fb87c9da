"""A job end to end on the other brokers: RabbitMQ carrying the tasks with a separate state Redis,
and a state Redis reached through Sentinel. Real servers, real worker processes."""

from __future__ import annotations

import time

import pytest
import requests

import segenc
from segenc.distributed import CeleryRunner
from segenc.distributed.state import JobState
from service.harness import MainInstance, WorkerNode, start_all, stop_all
from service.redis_server import RedisServer
from tests import checks
from tests.brokers import RabbitMQ, Sentinel, rabbitmq_missing
from tests.mediagen import make_clip

pytestmark = [pytest.mark.dist, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("src") / "clip.mp4", width=320, height=240, seconds=3.0)


def _job(broker, state, root, clip, out, tmp_path):
    worker = WorkerNode("bw1", root, redis_url=state, broker_url=broker, concurrency=2, ping=True,
                        log=tmp_path / "worker.log")
    try:
        start_all([worker], timeout=90)
        events = []
        runner = CeleryRunner(broker, root, state_url=state, timeout=180)
        res = segenc.encode(clip, out, ("240p",), runner=runner, chunk_seconds=1, on_progress=events.append)
    finally:
        stop_all([worker])
    frames = segenc.probe(clip).frames
    assert res.rendition("240p").frames == frames == checks.frame_count(out / "240p.mp4")
    assert checks.packet_dts_monotonic(out / "240p.mp4")
    assert {e.worker for e in events if e.kind == "chunk_started"} == {"bw1"}
    assert [e.stage for e in events if e.kind == "stage"][-1] == "done"
    return res


@pytest.fixture(scope="module")
def rabbitmq(tmp_path_factory):
    missing = rabbitmq_missing()
    if missing:
        pytest.skip(missing)
    with RabbitMQ(tmp_path_factory.mktemp("rabbitmq")) as mq:
        yield mq


def test_rabbitmq_broker_with_a_separate_state_redis_runs_a_job(tmp_path, clip, rabbitmq):
    root = tmp_path / "storage"
    root.mkdir()
    with RedisServer(tmp_path / "state") as state:
        _job(rabbitmq.url, state.url, root, clip, tmp_path / "out", tmp_path)
        keys = set(state.client().keys("*"))
        # The tasks went through RabbitMQ: kombu made no queue or binding in the state Redis ...
        assert not any(k.startswith((b"_kombu", b"unacked")) or k == b"celery" for k in keys), keys
        # ... which holds the results (chord parts) and segenc's job state.
        assert any(k.startswith(b"celery-task-meta-") for k in keys)
        assert any(k.startswith(b"segenc:job:") for k in keys)


def test_state_through_redis_sentinel_runs_a_job(tmp_path, clip):
    root = tmp_path / "storage"
    root.mkdir()
    with RedisServer(tmp_path / "master") as master, \
            Sentinel(tmp_path / "sentinel", master.port, master.password) as sentinel:
        state = JobState.from_url(sentinel.url())
        assert state.ping()
        res = _job(master.url, sentinel.url(), root, clip, tmp_path / "out", tmp_path)
        job_id = res.out_dir and next(iter(state.jobs()[0]))
        assert state.stage(job_id) == "done"


def test_main_instance_with_a_rabbitmq_broker_encodes_an_upload(tmp_path, clip, rabbitmq):
    with MainInstance(tmp_path / "encoder", concurrency=2, args=["--broker-url", rabbitmq.url]) as inst:
        conn = inst.connection()
        assert conn["broker_url"] == rabbitmq.url and conn["redis_url"].startswith("redis://")
        with open(clip, "rb") as f:
            r = requests.post(inst.url + "/api/upload", files={"file": ("clip.mp4", f)},
                              data={"ladder": "240p", "chunk_seconds": "1"}, timeout=60)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        deadline = time.monotonic() + 120
        while (st := inst.get_json(f"/api/status/{job_id}")[1])["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, st
            time.sleep(0.3)
        assert st["status"] == "done", st
        out = inst.tmp_dir / "encoded" / job_id / "240p.mp4"
        assert checks.frame_count(out) == segenc.probe(clip).frames
        # The embedded Redis holds the job's state.
        assert JobState.from_url(conn["redis_url"]).stage(job_id) == "done"
