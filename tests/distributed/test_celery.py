"""The chord over Redis with real worker processes: correctness, crash recovery, poison, inspect."""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
import uuid

import pytest

import segenc

from segenc.distributed import CeleryRunner, job_signature
from segenc.settings import Settings
from tests import checks
from tests.mediagen import make_clip

pytestmark = [pytest.mark.dist, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("src") / "clip.mp4", width=640, height=360, seconds=4.0)


def prepared_job(root, clip, chunk_seconds: float):
    """A job probed, planned and split on the shared storage, ready for its chord to be sent."""
    job_id = str(uuid.uuid4())
    plan = segenc.prepare(clip, root, job_id=job_id, ladder=("240p",),
                          settings=Settings(chunk_seconds=chunk_seconds), workdir=f"work/{job_id}")
    return job_id, plan


def wait_failed(job_state, job_id: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while job_state.stage(job_id) != "failed" and time.monotonic() < deadline:
        time.sleep(0.2)
    snap = job_state.snapshot(job_id)
    assert snap["stage"] == "failed", snap
    return snap


def _encode(cluster, storage, clip, out, **kw):
    app, _ = cluster
    events = []
    runner = CeleryRunner(app.conf.broker_url, storage[0], app=app, timeout=240)
    res = segenc.encode(clip, out, ("240p", "360p"), runner=runner, on_progress=events.append,
                        chunk_seconds=kw.pop("chunk_seconds", 0.5), **kw)
    return res, events


def test_chunks_run_on_both_workers_and_output_is_exact(cluster, storage, clip, tmp_path):
    res, events = _encode(cluster, storage, clip, tmp_path / "out")
    src_frames = segenc.probe(clip).frames
    for r in res.renditions:
        path = tmp_path / "out" / r.path
        assert r.frames == src_frames == checks.frame_count(path)
        assert checks.packet_dts_monotonic(path)
    assert (tmp_path / "out" / "manifest.json").exists()
    started = {e.worker for e in events if e.kind == "chunk_started"}
    assert {"w1", "w2"} <= started, started
    frames_events = [e for e in events if e.kind == "chunk_done" and e.rendition == "360p"]
    assert sum(e.frames for e in frames_events) == src_frames
    assert [e.stage for e in events if e.kind == "stage"][-1] == "done"
    # Nothing of the job is left in the shared work area.
    assert not any((storage[0] / "work").glob(f"{res.source and ''}*/segments"))


def test_worker_killed_mid_chunk_does_not_lose_the_job(cluster, storage, tmp_path, job_state):
    app, workers = cluster
    long_clip = make_clip(tmp_path / "long.mp4", width=1280, height=720, seconds=6.0, audio=False)
    by_name = {w.name: w for w in workers}
    killed = {}

    def kill_first_busy_worker(ev):
        if ev.kind == "chunk_started" and ev.worker in by_name and not killed:
            time.sleep(0.3)  # let it get into the encode
            pids = by_name[ev.worker].children()
            assert pids, f"{ev.worker} has no pool process"
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed[ev.chunk_id] = ev.job_id

    runner = CeleryRunner(app.conf.broker_url, storage[0], app=app, timeout=240)
    res = segenc.encode(long_clip, tmp_path / "out", ("720p",), runner=runner, chunk_seconds=2,
                        on_progress=kill_first_busy_worker)
    assert killed, "no worker ever started a chunk"
    out = tmp_path / "out" / "720p.mp4"
    assert checks.frame_count(out) == segenc.probe(long_clip).frames == res.rendition("720p").frames
    (chunk_id, job_id), = killed.items()
    # Re-run after the redelivery, or (every task started, a worker idle) finished by a backup copy.
    won = job_state.backups(job_id).get(chunk_id, {}).get("outcome") == "won"
    assert job_state.attempts(job_id, chunk_id) >= 2 or won


def test_poisoned_chunk_fails_the_job_with_a_message_and_other_jobs_continue(cluster, storage, clip, tmp_path, job_state):
    app, _ = cluster
    root = storage[0]
    job_id, plan = prepared_job(root, clip, chunk_seconds=1)
    poisoned = plan.chunks[1]
    (root / poisoned.source).write_bytes(b"\x1a\x45\xdf\xa3 not really matroska" * 100)
    job_state.create(job_id, stage="encoding")
    result = job_signature(app, plan, f"encoded/{job_id}").apply_async()

    good = {}
    t = threading.Thread(target=lambda: good.update(res=_encode(cluster, storage, clip, tmp_path / "good")[0]))
    t.start()
    snap = wait_failed(job_state, job_id)
    assert poisoned.chunk_id in snap["error"]
    t.join(180)
    assert good["res"].rendition("360p").frames == segenc.probe(clip).frames
    deadline = time.monotonic() + 30
    while not result.ready():  # polled: .get() would subscribe this process to result pub/sub
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert result.failed()
    assert not (root / "encoded" / job_id / "240p.mp4").exists()
    shutil.rmtree(root / "work" / job_id, ignore_errors=True)


def test_missing_segment_is_retried_a_capped_number_of_times_then_fails(cluster, storage, clip, job_state):
    app, _ = cluster
    root = storage[0]
    job_id, plan = prepared_job(root, clip, chunk_seconds=2)
    gone = plan.chunks[0]
    (root / gone.source).unlink()
    job_state.create(job_id, stage="encoding")
    job_signature(app, plan, f"encoded/{job_id}").apply_async()
    snap = wait_failed(job_state, job_id)
    assert gone.chunk_id in snap["error"] and "missing" in snap["error"]
    assert job_state.attempts(job_id, gone.chunk_id) == 3
    shutil.rmtree(root / "work" / job_id, ignore_errors=True)


def test_inspect_active_names_the_running_chunks(cluster, storage, tmp_path):
    app, workers = cluster
    long_clip = make_clip(tmp_path / "long.mp4", width=1280, height=720, seconds=12.0, audio=False)
    seen: set[str] = set()
    shown: dict[str, str] = {}
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            # limit: return once every worker has answered (a chunk may take only a second or two)
            for tasks in (app.control.inspect(timeout=0.5, limit=len(workers)).active(safe=True) or {}).values():
                seen.update(t["id"] for t in tasks if t["name"] == "segenc.encode_chunk")
                shown.update((t["id"], str(t["args"])) for t in tasks if t["name"] == "segenc.encode_chunk")

    th = threading.Thread(target=watch)
    th.start()
    try:
        runner = CeleryRunner(app.conf.broker_url, storage[0], app=app, timeout=240)
        segenc.encode(long_clip, tmp_path / "out", ("720p",), runner=runner, chunk_seconds=4)
    finally:
        stop.set()
        th.join()
    assert seen, "inspect().active() never showed a chunk task"
    assert all(":s0" in t and t.endswith("-720p") for t in seen), seen
    # Its arguments' repr (`celery inspect active --safe`, Flower) reads as the job and its
    # chunks, not as a truncated dump of the chunk specs.
    for task, args in shown.items():
        job, chunk = task.split(":")
        assert args == f"[{job}: {chunk}]", args


def test_failed_job_raises_for_the_caller(cluster, storage, tmp_path):
    app, _ = cluster
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 1000)
    runner = CeleryRunner(app.conf.broker_url, storage[0], app=app, timeout=60)
    with pytest.raises(segenc.InputError):
        segenc.encode(bad, tmp_path / "out", ("240p",), runner=runner)
    assert not (tmp_path / "out").exists()


def test_duplicate_deliveries_do_no_work_and_count_no_attempt(cluster, storage, clip, tmp_path, job_state):
    """A restored copy of a chunk that is already done, or of one whose job has finished (its work
    dir removed), returns the stored result at once: no encode, no attempt, no file recreated."""
    from segenc.distributed.tasks import celery_id

    app, _ = cluster
    root = storage[0]
    job_id, plan = prepared_job(root, clip, chunk_seconds=1)
    job_state.create(job_id, stage="encoding")
    result = job_signature(app, plan, f"encoded/{job_id}").apply_async()
    deadline = time.monotonic() + 120
    while not result.ready():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert result.successful() and job_state.stage(job_id) == "done"
    assert not (root / "work" / job_id).exists()
    task, group = plan.tasks[0], plan.groups()[0]
    before = job_state.attempts(job_id, task.id)
    assert before == 1
    copy = app.send_task("segenc.encode_chunk", args=([s.to_dict() for s in group],),
                         task_id=celery_id(job_id, task.id))
    deadline = time.monotonic() + 60
    while not copy.ready():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert copy.successful()
    assert [r["chunk_id"] for r in copy.result] == list(task.chunks)
    assert job_state.attempts(job_id, task.id) == before
    assert not (root / "work" / job_id).exists()  # nothing re-encoded into a removed work dir
    # A copy of the finished job's preparation does not send its chord again.
    again = app.send_task("segenc.run_job", args=(job_id, "uploads/none", ["240p"], {}, f"encoded/{job_id}"),
                          task_id=celery_id(job_id, "prepare"))
    while not again.ready():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert again.successful() and again.result == ""
    assert job_state.stage(job_id) == "done"


@pytest.mark.parametrize("all_done", [True, False], ids=["every-task-done", "a-task-missing"])
def test_chord_bookkeeping_lost_to_a_redis_outage_still_finishes_a_complete_job(cluster, storage, clip, job_state,
                                                                               all_done):
    """Celery's chord raises a ChordError when Redis goes away while it joins the last task's
    result and sends the body (seen when the chaos test SIGKILLed the main instance with its
    Redis). Every task of the job is done, so its errback finishes the job, exact, instead of
    failing it. With a task not done, the same errback still fails the job."""
    from celery.exceptions import ChordError

    from segenc.distributed.tasks import FINISH, celery_id

    app, _ = cluster
    root = storage[0]
    job_id, plan = prepared_job(root, clip, chunk_seconds=1)
    job_state.create(job_id, stage="encoding")
    groups = plan.groups()[: None if all_done else -1]
    sent = [app.send_task("segenc.encode_chunk", args=([s.to_dict() for s in g],),
                          task_id=celery_id(job_id, t.id)) for t, g in zip(plan.tasks, groups)]
    deadline = time.monotonic() + 120
    while not all(r.ready() for r in sent):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    body = celery_id(job_id, FINISH)
    app.backend.mark_as_failure(body, ChordError(f"Dependency {sent[-1].id} raised ConnectionError('Connection "
                                                 "closed by server.')"))
    errback = app.send_task("segenc.chord_failed", args=(body, job_id),
                            kwargs={"workdir": plan.workdir, "out": f"encoded/{job_id}"})
    errback.get(timeout=120, propagate=False)
    if all_done:
        assert job_state.stage(job_id) == "done", job_state.snapshot(job_id)
        out = root / "encoded" / job_id / "240p.mp4"
        assert checks.frame_indices(out) == list(range(checks.frame_count(clip)))
        assert not (root / "work" / job_id).exists()
    else:
        snap = wait_failed(job_state, job_id)
        assert "outside segenc's control" in snap["error"] and body in snap["error"], snap["error"]
        assert not (root / "encoded" / job_id / "240p.mp4").exists()
