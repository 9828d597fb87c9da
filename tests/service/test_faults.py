"""Bad days, with real faults: a worker machine dies, the main instance is killed or stopped
mid-job and restarted, a copy of a finished task arrives, a worker has the wrong secret. Every job
ends done with exact output (the barcode of every frame), and nothing runs past the attempt cap.
Timings are bounded loosely here; `python -m benchmarks faults` measures them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests import checks
from tests.mediagen import make_clip
from tests.service.conftest import REPO, running_instance
from tests.service.test_transfer import start_worker, wait_online

pytestmark = [pytest.mark.service, pytest.mark.dist, pytest.mark.timeout(420)]

LADDER = "240p,360p"


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    # 12 s in 3 s chunks: each chunk takes long enough for a kill to land mid-encode.
    return make_clip(tmp_path_factory.mktemp("faults") / "long.mp4", width=640, height=360, seconds=12.0)


def upload(inst, clip) -> str:
    r = inst.upload(clip, ladder=LADDER, chunk_seconds="3")
    assert r.status_code == 202, r.text
    return r.json()["job_id"]


def wait_for(pred, timeout: float, what: str, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)


def status(inst, job):
    try:
        return inst.get(f"/api/status/{job}").json()
    except Exception:  # noqa: BLE001 - the instance may be restarting
        return {}


def assert_exact(tmp_dir: Path, job: str, clip: Path):
    want = list(range(checks.frame_count(clip)))
    for q in LADDER.split(","):
        out = tmp_dir / "encoded" / job / f"{q}.mp4"
        assert checks.frame_indices(out) == want, q
        assert checks.packet_dts_monotonic(out)
    assert not (tmp_dir / "work" / job).exists()


def attempts_within_cap(tmp_dir: Path, job: str) -> None:
    from segenc.distributed.app import MAX_ATTEMPTS
    from segenc.distributed.state import JobState

    url = json.loads((tmp_dir / "cluster.json").read_text())["redis_url"]
    state = JobState.from_url(url)
    plan_tasks = [t["task"] for t in state.requeues(job)]
    for task in set(plan_tasks):
        assert state.attempts(job, task) <= MAX_ATTEMPTS, task


def env_for(runtime: Path) -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("SEGENC_REDIS_URL",)} | {
        "SEGENC_RUNTIME_DIR": str(runtime)}


def group_of(proc) -> list[int]:
    try:
        return [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def gone(pids) -> bool:
    return not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def freeze_mid_chunk(inst, job: str, worker) -> str:
    """SIGSTOP ``worker``'s whole group while it runs a chunk of ``job`` that has not finished, and
    return that chunk. A chunk can finish between two status polls (a loaded machine makes the
    timing anything); then the group is resumed and the next chunk it takes is tried instead."""
    from segenc import layout
    from segenc.distributed.state import JobState
    from segenc.model import Plan

    url = json.loads((inst.tmp_dir / "cluster.json").read_text())["redis_url"]
    state = JobState.from_url(url)
    plan_file = inst.tmp_dir / layout.plan_file(layout.work_dir(job))
    tried: set[str] = set()
    for _ in range(6):
        running = wait_for(lambda: [c for c, w in state.running(job).items() if w == worker.name and c not in tried],
                           120, f"{worker.name} to run a chunk", every=0.02)
        os.killpg(worker.proc.pid, signal.SIGSTOP)
        chunk = running[0]
        task = next(t.id for t in Plan.from_json(plan_file.read_text()).tasks if chunk in t.chunks)
        if state.done(job, task) is None and state.running(job).get(chunk) == worker.name:
            return chunk
        tried.add(chunk)
        os.killpg(worker.proc.pid, signal.SIGCONT)
    raise AssertionError(f"{worker.name} finished every chunk before it could be frozen: {sorted(tried)}")


def test_worker_machine_dies_and_its_chunk_moves_to_another_worker(tmp_path, long_clip):
    runtime = tmp_path / "rt"
    with running_instance(tmp_path / "enc", runtime_dir=runtime, extra=["--concurrency", "1"]) as inst:
        w2 = start_worker("doomed", tmp_path / "enc", env_for(runtime))
        try:
            wait_online(inst, ["doomed", "main_worker"])
            job = upload(inst, long_clip)
            chunk = freeze_mid_chunk(inst, job, w2)
            pids = group_of(w2)
            w2.kill()  # SIGKILL to the whole (frozen) group: the machine, pool and all
            killed_at = time.monotonic()
            assert wait_for(lambda: gone(pids), 10, "the killed group to be gone")
            # The chunk runs again elsewhere (or is already done there) within seconds, not an hour.
            wait_for(lambda: (st := status(inst, job)).get("running", {}).get(chunk) == "main_worker"
                     or st.get("status") == "done" or any(r["task"] in chunk for r in st.get("requeued", [])),
                     40, f"{chunk} to be handed to another worker")
            moved_after = time.monotonic() - killed_at
            st = wait_for(lambda: (s := status(inst, job)).get("status") in ("done", "failed") and s, 240, "the job")
            assert st["status"] == "done", st
            assert moved_after < 40
            requeued = st["requeued"]
            # Moved by the watchdog (the lease lapsed), or first by a straggler's backup copy.
            by_lease = bool(requeued) and requeued[0]["worker"] == "doomed" and "lease" in requeued[0]["reason"]
            by_backup = any(b.get("of_worker") == "doomed" and b.get("outcome") == "won"
                            for b in st["backups"].values())
            assert by_lease or by_backup, (requeued, st["backups"])
            assert "doomed" not in st["running"].values()
            assert_exact(inst.tmp_dir, job, long_clip)
            attempts_within_cap(inst.tmp_dir, job)
        finally:
            w2.stop()


@pytest.mark.parametrize("how", ["sigkill", "ctrl-c"])
def test_main_instance_restart_mid_job_resumes_it_and_workers_rejoin(tmp_path, long_clip, how):
    runtime = tmp_path / "rt"
    tmp_dir = tmp_path / "enc"
    with running_instance(tmp_dir, runtime_dir=runtime, extra=["--concurrency", "1"]) as inst:
        extra = start_worker("stayer", tmp_dir, env_for(runtime))
        wait_online(inst, ["stayer", "main_worker"])
        job = upload(inst, long_clip)
        wait_for(lambda: status(inst, job).get("running"), 120, "encoding to start", every=0.05)
        pids = group_of(inst.proc)
        if how == "sigkill":
            os.kill(inst.proc.pid, signal.SIGKILL)  # the supervisor alone: its children must follow it
        else:
            os.kill(inst.proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends the supervisor
        inst.proc.wait(60)
        assert wait_for(lambda: gone(pids), 30, "every process of the main instance to end")
    try:
        assert extra.running, "the extra worker died with the main instance"
        t_restart = time.monotonic()
        with running_instance(tmp_dir, runtime_dir=runtime, extra=["--concurrency", "1"]) as again:
            # The extra worker was not restarted: it reconnects to the same Redis port and password.
            wait_online(again, ["stayer"], timeout=60)
            rejoined = time.monotonic() - t_restart
            st = wait_for(lambda: (s := status(again, job)).get("status") in ("done", "failed") and s, 300, "the job")
            assert st["status"] == "done", st
            assert rejoined < 60
            assert_exact(tmp_dir, job, long_clip)
            attempts_within_cap(tmp_dir, job)
    finally:
        extra.stop()


def test_a_quick_restart_after_ctrl_c_is_not_refused(tmp_path):
    """TIME_WAIT sockets from the last run do not count as 'port in use'."""
    runtime = tmp_path / "rt"
    with running_instance(tmp_path / "enc", runtime_dir=runtime) as inst:
        inst.get("/healthz")  # leave a closed connection behind
        port = inst.port
        inst.proc.send_signal(signal.SIGINT)
        inst.proc.wait(60)
    env = env_for(runtime)
    proc = subprocess.Popen([sys.executable, str(REPO / "start_service.py"), "--port", str(port), "--tmp-dir",
                             str(tmp_path / "enc"), "--concurrency", "1"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True)
    try:
        # The server's own log lines may come first; a refused start exits after its one error line.
        seen = []
        for _ in range(50):
            line = proc.stdout.readline()
            seen.append(line)
            if not line or "segenc is up" in line:
                break
        assert "segenc is up" in seen[-1], "".join(seen)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)


def test_a_worker_with_the_wrong_cluster_secret_is_refused_at_start(tmp_path):
    runtime = tmp_path / "rt"
    with running_instance(tmp_path / "enc", runtime_dir=runtime) as inst:
        url = json.loads((inst.tmp_dir / "cluster.json").read_text())["redis_url"]
        env = env_for(tmp_path / "elsewhere")
        r = subprocess.run([sys.executable, str(REPO / "start_service.py"), "--worker-name", "intruder",
                            "--tmp-dir", str(tmp_path / "other"), "--cluster-secret", "wrong"],
                           cwd=REPO, env=env | {"SEGENC_REDIS_URL": url}, capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 2
        assert r.stderr.startswith("error: the main instance at") and "cluster secret" in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
        assert "intruder" not in {w["name"] for w in inst.get("/api/workers").json()["workers"]}
        # The storage is this user's only.
        import stat as st

        assert st.S_IMODE(inst.tmp_dir.stat().st_mode) == 0o700
        for name in ("cluster.json", "redis.conf", "redis.log", "redis-credentials.json"):
            assert st.S_IMODE((inst.tmp_dir / name).stat().st_mode) == 0o600, name
        # And the Redis password never appears on a command line.
        password = url.split(":")[2].split("@")[0]
        for p in psutil.process_iter(["cmdline"]):
            assert password not in " ".join(p.info["cmdline"] or []), p.info["cmdline"]


def test_two_main_instances_keep_their_own_connection_files(tmp_path):
    runtime = tmp_path / "rt"
    with running_instance(tmp_path / "a", runtime_dir=runtime) as a, \
            running_instance(tmp_path / "b", runtime_dir=runtime) as b:
        files = sorted((runtime / "instances").glob("*.json"))
        assert len(files) == 2
        assert {json.loads(f.read_text())["tmp_dir"] for f in files} == {str(a.tmp_dir.resolve()),
                                                                          str(b.tmp_dir.resolve())}
        r = subprocess.run([sys.executable, str(REPO / "start_service.py"), "--worker-name", "lost",
                            "--tmp-dir", str(tmp_path / "c")], cwd=REPO, env=env_for(runtime),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "several main instances" in r.stderr
        assert str(a.tmp_dir.resolve()) in r.stderr and str(b.tmp_dir.resolve()) in r.stderr
    assert list((runtime / "instances").glob("*.json")) == []
