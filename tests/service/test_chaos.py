"""A chaos run: eight jobs of 5-40 s while worker machines are SIGKILLed at random (and restarted a
few seconds later) and the main instance is killed and restarted once. Every job ends done, every
output is exact (the barcode of every frame), no task ran more often than the attempt cap, and no
process is left behind."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time

import psutil
import pytest

from segenc.distributed.app import MAX_ATTEMPTS
from segenc.distributed.state import JobState
from tests import checks
from tests.mediagen import make_clip
from tests.service.conftest import running_instance
from tests.service.test_faults import env_for, gone, group_of, status
from tests.service.test_transfer import start_worker, wait_online

pytestmark = [pytest.mark.service, pytest.mark.dist, pytest.mark.slow, pytest.mark.timeout(600)]

SECONDS = (5, 10, 15, 20, 25, 30, 35, 40)
LADDER = "240p,360p"


def test_chaos_every_job_done_and_exact(tmp_path):
    rng = random.Random(20261202)
    clips = [make_clip(tmp_path / f"c{s}.mp4", width=640, height=360, seconds=float(s)) for s in SECONDS]
    runtime, tmp_dir = tmp_path / "rt", tmp_path / "enc"
    env = env_for(runtime)
    names = ("chaos_1", "chaos_2")
    workers: dict[str, object] = {}
    started: list[int] = []
    stop_chaos = threading.Event()
    kills: list[str] = []
    jobs: list[str] = []

    def spawn(name):
        workers[name] = start_worker(name, tmp_dir, env)
        started.append(workers[name].pid)

    hit: dict[str, int] = {}  # chunk -> times the chaos thread killed the worker running it

    def chaos():
        pause = rng.uniform(3, 7)
        while not stop_chaos.wait(pause):
            name = rng.choice(names)
            p = workers[name]
            # At most one kill per chunk: with the main restart, a chunk loses at most two attempts
            # and stays under the cap of three, so every job can (and must) finish. And only a
            # kill that lands on a running chunk: a worker between chunks (or a status read while
            # the main instance restarts) is looked at again half a second later.
            running = [c for j in jobs for c, w in status(inst, j).get("running", {}).items() if w == name]
            if not running or not p.running or any(hit.get(c) for c in running):
                pause = 0.5
                continue
            pause = rng.uniform(3, 7)
            for c in running:
                hit[c] = 1
            if p.running:
                started.extend(group_of(p))
                p.kill()  # SIGKILL to the worker's whole process group
                kills.append(name)
            if stop_chaos.wait(rng.uniform(2, 4)):
                return
            spawn(name)

    inst_cm = running_instance(tmp_dir, runtime_dir=runtime, extra=["--concurrency", "1"])
    inst = inst_cm.__enter__()
    try:
        for n in names:
            spawn(n)
        wait_online(inst, [*names, "main_worker"])
        for c in clips:
            r = inst.upload(c, ladder=LADDER, chunk_seconds="2.5")
            assert r.status_code == 202, r.text
            jobs.append(r.json()["job_id"])
        th = threading.Thread(target=chaos, daemon=True)
        th.start()
        # One main instance restart, a third of the way through.
        time.sleep(20)
        started.extend(group_of(inst.proc))
        os.kill(inst.proc.pid, signal.SIGKILL)
        inst.proc.wait(30)
        inst_cm.__exit__(None, None, None)
        inst_cm = running_instance(tmp_dir, runtime_dir=runtime, extra=["--concurrency", "1"])
        inst = inst_cm.__enter__()
        deadline = time.monotonic() + 420
        while True:
            states = {j: status(inst, j).get("status") for j in jobs}
            if all(s in ("done", "failed", "cancelled") for s in states.values()):
                break
            assert time.monotonic() < deadline, states
            time.sleep(1)
        stop_chaos.set()
        th.join(30)
        not_done = {j: status(inst, j) for j, s in states.items() if s != "done"}
        assert not not_done, {j: (st.get("status"), st.get("error"), st.get("requeued"), st.get("resent"),
                                  st.get("running")) for j, st in not_done.items()}
        assert kills, "the chaos thread never killed a worker"
        requeued = [r for j in jobs for r in status(inst, j)["requeued"]]
        # A killed chunk comes back either way: requeued by the watchdog, or taken over by a
        # straggler's backup that another (idle) worker started and that won.
        won = [t for j in jobs for t, b in status(inst, j)["backups"].items() if b.get("outcome") == "won"]
        assert requeued or won, "no killed chunk was ever requeued or taken over: the faults missed every running chunk"
        state = JobState.from_url(json.loads((tmp_dir / "cluster.json").read_text())["redis_url"])
        for job, clip in zip(jobs, clips):
            want = list(range(checks.frame_count(clip)))
            for q in LADDER.split(","):
                assert checks.frame_indices(tmp_dir / "encoded" / job / f"{q}.mp4") == want, (job, q)
            over = {t: n for t, n in state.all_attempts(job).items() if n > MAX_ATTEMPTS}
            assert not over, over
    finally:
        stop_chaos.set()
        for p in workers.values():
            started.extend(group_of(p))
            p.stop()
        started.extend(group_of(inst.proc))
        inst_cm.__exit__(None, None, None)
    deadline = time.monotonic() + 30
    while not gone(started):
        assert time.monotonic() < deadline, [p for p in started if psutil.pid_exists(p)]
        time.sleep(0.2)
