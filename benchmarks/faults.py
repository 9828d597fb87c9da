"""Faults: how fast a job gets over a dead worker machine or a main instance restart.

A real main instance (``start_service.py``: Redis, web server, one worker process) and one extra
worker process on the same storage, on loopback. Two scenarios, each repeated ``--kills`` times:

- **worker**: while the extra worker encodes a chunk, its whole process group is SIGKILLed (a
  machine dying). Measured: kill -> the same task running (or done) on another worker. The
  killed worker is restarted between trials.
- **main**: mid-job, the main instance's supervisor gets SIGKILL (``--kills`` times) or Ctrl-C
  (SIGINT, half as often: a clean stop lets the running chunks finish, so usually nothing is lost),
  then the instance is started again with the same ``--tmp-dir``. Measured: restart -> the chunks
  that were running at the stop running again, and restart -> the extra worker (never restarted)
  online again.

Every job must end ``done`` with the source's exact frame count and timestamps in every rendition,
and no task may run more often than the attempt cap.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .inputs import DEFAULT_CACHE, InputSpec, ensure_input
from .machine import machine_info, machine_line
from .registry import register
from .report import md_table, text_table, write_results
from .transfer import upload

REPO = Path(__file__).resolve().parent.parent
LADDER = "240p,360p"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kills", type=int, default=5, help="trials per scenario (default 5)")
    p.add_argument("--seconds", type=float, default=24.0, help="clip length (default 24)")
    p.add_argument("--quick", action="store_true", help="2 trials per scenario")


class Proc:
    """A start_service.py process in its own session, logging to a file."""

    def __init__(self, args: list[str], env: dict, log: Path) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.p = subprocess.Popen([sys.executable, str(REPO / "start_service.py"), *args], cwd=REPO, env=env,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, sig: int, group: bool = False) -> None:
        if self.p.poll() is None:
            (os.killpg if group else os.kill)(self.p.pid, sig)

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()


def _get(url: str, timeout: float = 5) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def _try(url: str) -> dict:
    try:
        return _get(url)
    except OSError:
        return {}


def _wait(pred, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


class Cluster:
    def __init__(self, work: Path) -> None:
        from service.redis_server import free_port

        self.work, self.tmp = work, work / "enc"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k != "SEGENC_REDIS_URL"}
        self.env["SEGENC_RUNTIME_DIR"] = str(work / "runtime")
        self.main: Proc | None = None
        self.extra: Proc | None = None

    def start_main(self) -> float:
        self.main = Proc(["--port", str(self.port), "--tmp-dir", str(self.tmp), "--redis-port", "0",
                          "--concurrency", "1"], self.env, self.work / "main.log")
        t = time.monotonic()
        _wait(lambda: _try(self.base + "/healthz").get("ok"), 90, "the main instance", every=0.1)
        return t

    def start_extra(self) -> None:
        self.extra = Proc(["--worker-name", "extra", "--tmp-dir", str(self.tmp), "--concurrency", "1"], self.env,
                          self.work / "extra.log")

    def online(self, name: str) -> bool:
        return any(w["name"] == name and w["online"] for w in _try(self.base + "/api/workers").get("workers", []))

    def status(self, job: str) -> dict:
        return _try(f"{self.base}/api/status/{job}")

    def finish(self, job: str, clip_frames: int) -> None:
        st = _wait(lambda: (s := self.status(job)).get("status") in ("done", "failed", "cancelled") and s, 600,
                   "the job", every=0.2)
        if st["status"] != "done":
            raise RuntimeError(f"job {job} ended {st['status']}: {st.get('error')}")
        import av

        for q in LADDER.split(","):
            path = self.tmp / "encoded" / job / f"{q}.mp4"
            with av.open(str(path)) as c:
                pts = [f.pts for f in c.decode(video=0)]
            if len(pts) != clip_frames or any(b <= a for a, b in zip(pts, pts[1:])):
                raise RuntimeError(f"job {job} {q}: {len(pts)} frames, expected {clip_frames} in increasing order")
        from segenc.distributed import JobState
        from segenc.distributed.app import MAX_ATTEMPTS

        url = json.loads((self.tmp / "cluster.json").read_text())["redis_url"]
        over = {t: n for t, n in JobState.from_url(url).all_attempts(job).items() if n > MAX_ATTEMPTS}
        if over:
            raise RuntimeError(f"job {job}: tasks past the attempt cap: {over}")

    def state(self):
        from segenc.distributed import JobState

        return JobState.from_url(json.loads((self.tmp / "cluster.json").read_text())["redis_url"])

    def stop(self) -> None:
        for p in (self.extra, self.main):
            if p is not None:
                p.stop()


def _source_frames(clip: Path) -> int:
    import av

    with av.open(str(clip)) as c:
        return sum(1 for _ in c.decode(video=0))


def _worker_trial(c: Cluster, clip: Path, frames: int) -> float:
    _wait(lambda: c.online("extra") and c.online("main_worker"), 90, "both workers online")
    job = upload(c.base, clip, LADDER, "3")
    running = _wait(lambda: [k for k, w in c.status(job).get("running", {}).items() if w == "extra"], 120,
                    "the extra worker to run a chunk")
    time.sleep(0.5)  # into the encode
    c.extra.signal(signal.SIGKILL, group=True)
    killed = time.monotonic()
    chunk = running[0]

    def moved():
        st = c.status(job)
        on = st.get("running", {}).get(chunk)
        return (on is not None and on != "extra") or st.get("status") == "done"

    _wait(moved, 300, f"{chunk} on another worker")
    dt = time.monotonic() - killed
    c.extra.p.wait()
    c.start_extra()
    c.finish(job, frames)
    return dt


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.kills = 2
    clip = ensure_input(InputSpec(width=640, height=360, seconds=args.seconds, gop=30))
    frames = _source_frames(clip)
    work = Path(tempfile.mkdtemp(prefix="faults-", dir=DEFAULT_CACHE))
    worker_s: list[float] = []
    resume_s: list[float] = []
    rejoin_s: list[float] = []
    jobs = 0
    c = Cluster(work)
    try:
        c.start_main()
        c.start_extra()
        for i in range(args.kills):
            worker_s.append(_worker_trial(c, clip, frames))
            jobs += 1
            print(f"  worker kill {i + 1}: chunk on another worker after {worker_s[-1]:.2f} s", flush=True)
        # SIGKILL trials lose the chunks the main worker runs; Ctrl-C trials show a clean stop.
        hows = [signal.SIGKILL] * args.kills + [signal.SIGINT] * max(1, args.kills // 2)
        for i, how in enumerate(hows):
            _wait(lambda: c.online("extra") and c.online("main_worker"), 90, "both workers online")
            job = upload(c.base, clip, LADDER, "3")
            _wait(lambda: "main_worker" in c.status(job).get("running", {}).values(), 120,
                  "the main instance's worker to run a chunk")
            time.sleep(0.5)
            state = c.state()
            tasks = [t["id"] for t in json.loads((c.tmp / "work" / job / "plan.json").read_text())["tasks"]]
            # The tasks the main worker holds as it is stopped: leased by it, not done.
            held = {t: state.attempts(job, t) for t in tasks
                    if (state.lease_holder(job, t) or "").startswith("main_worker:")}
            c.main.signal(how)
            c.main.p.wait(120)
            t = c.start_main()
            state = c.state()
            lost = {k: n for k, n in held.items() if state.done(job, k) is None}  # a clean stop may finish them

            def again():
                return all(state.attempts(job, k) > n or state.done(job, k) is not None for k, n in lost.items())

            seen: dict[str, float] = {}
            deadline = t + 180
            while len(seen) < 2:  # both clocks run from the restart command
                if "resume" not in seen and again():
                    seen["resume"] = time.monotonic() - t
                if "rejoin" not in seen and c.online("extra"):
                    seen["rejoin"] = time.monotonic() - t
                if time.monotonic() > deadline:
                    raise RuntimeError(f"after the restart: {seen} of resume/rejoin within 180 s")
                time.sleep(0.05)
            if lost:
                resume_s.append(seen["resume"])
            rejoin_s.append(seen["rejoin"])
            c.finish(job, frames)
            jobs += 1
            print(f"  main {'Ctrl-C' if how == signal.SIGINT else 'SIGKILL'} {i + 1}: "
                  + (f"{len(lost)} lost task(s) running again {resume_s[-1]:.2f} s after the restart" if lost
                     else "no task lost (the clean stop finished them)")
                  + f", extra worker back after {rejoin_s[-1]:.2f} s", flush=True)
    finally:
        c.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) if v else float("nan")
           for k, v in (("worker", worker_s), ("resume", resume_s), ("rejoin", rejoin_s))}
    ok = lambda v, t: "met" if v <= t else "MISSED"  # noqa: E731
    rows = [
        ("worker process group SIGKILLed -> its chunk running on another worker", f"{med['worker']:.2f} s",
         "<= 12 s", ok(med["worker"], 12)),
        ("main instance Ctrl-C or SIGKILL mid-job -> restart -> lost chunks running again",
         f"{med['resume']:.2f} s after the restart", "<= 15 s", ok(med["resume"], 15)),
        ("extra worker rejoins after a main restart, without being restarted", f"{med['rejoin']:.2f} s",
         "<= 30 s", ok(med["rejoin"], 30)),
        ("jobs lost, outputs wrong, chunks run past the attempt cap", f"0 of {jobs} jobs", "0", "met"),
    ]
    headers = ("figure (median)", "measured", "target", "")
    print(text_table(headers, rows))
    m = machine_info()
    md = "\n".join(["# faults: a dead worker machine and main instance restarts", "",
                    f"- **machine**: {machine_line(m)}",
                    f"- **input**: {args.seconds:g} s 640x360, ladder {LADDER}, 3 s segments; main instance (1 worker "
                    f"process) + 1 extra worker process on the same storage; {args.kills} trials per scenario",
                    "- **command**: `python -m benchmarks faults" + (" --quick" if args.quick else "") + "`", "",
                    md_table(headers, rows), "",
                    f"Samples (s): worker kill {[round(x, 2) for x in worker_s]}; resume after restart "
                    f"{[round(x, 2) for x in resume_s]}; rejoin {[round(x, 2) for x in rejoin_s]}.",
                    "Every job ended done with the source's frame count in every rendition, and no task ran past "
                    "the attempt cap (the run stops with an error otherwise).", ""])
    write_results("faults", md, {"machine": m, "worker_kill_s": worker_s, "resume_s": resume_s,
                                 "rejoin_s": rejoin_s, "jobs": jobs, "args": vars(args) | {"func": None}})
    print("wrote benchmarks/results/faults.md")
    return 0


register("faults", help="dead worker machines and main restarts: how fast jobs recover",
         description=__doc__, add_arguments=add_arguments, run=run)
