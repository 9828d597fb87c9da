"""Scale rehearsal: segenc's coordination with 64 and 256 worker slots, on one machine.

MEASURES COORDINATION ONLY. The job is the projection's modelled source (10 minutes of 1080p,
3 rungs) planned for the slot count by the real planner; its plan goes to the shared storage and
its chord through a real redis-server to real segenc worker nodes (benchmarks/rehearsal_worker.py:
the real tasks, leases, done markers, commit claims, heartbeats, watchdog and backups, on a
thread pool), whose encode step SLEEPS for the modelled time of each task (the projection's fit)
and whose finish step sleeps for the modelled concat. The real web server (gunicorn + gevent)
relays the job's events to a WebSocket client. Not run: probe and split (there is no 10-minute
file), and no pixel is encoded.

Measured per slot count: dispatch latency (chord sent -> each first-round task's start, and a
slot's previous task done -> its next start), chord completion (last task done -> finish start),
Redis commands per second, progress events and WebSocket messages per second, and the wall from
chord sent to job done against the projection's model of the same span. Writes
``results/rehearsal.{md,json}``; ``python -m benchmarks projection`` then takes its dispatch
figures from it (the largest slot count).
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from .registry import register
from .report import RESULTS_DIR, md_table, write_results

REPO = Path(__file__).resolve().parent.parent
SLOTS_PER_NODE = 64


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slots", default="64,256", help="worker slot counts to rehearse (default 64,256)")
    p.add_argument("--per-node", type=int, default=SLOTS_PER_NODE, help="slots per worker node (default 64)")
    p.add_argument("--minutes", type=float, default=10.0, help="modelled source length (default 10)")
    p.add_argument("--audio", choices=("both", "yes", "no"), default="both",
                   help="rehearse the source with its audio track (one long task), without it, or both (default)")
    p.add_argument("--quick", action="store_true", help="time scale 0.25 (sleeps a quarter of the modelled time)")
    p.add_argument("--time-scale", type=float, default=None, help="multiply every modelled sleep (default 1)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR))
    p.add_argument("--tag", default="rehearsal")
    p.add_argument("--no-save", action="store_true")


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


class Sampler(threading.Thread):
    """Redis INFO every 0.25 s: commands processed and ops/s."""

    def __init__(self, client) -> None:
        super().__init__(daemon=True)
        self.client, self.stop, self.samples = client, threading.Event(), []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                info = self.client.info("stats")
                self.samples.append((time.time(), info["total_commands_processed"], info["instantaneous_ops_per_sec"]))
            except Exception:  # noqa: BLE001
                pass
            self.stop.wait(0.25)


class EventCounter(threading.Thread):
    """The events channel and one WebSocket client, counted."""

    def __init__(self, state, ws_url: str) -> None:
        super().__init__(daemon=True)
        self.state, self.ws_url = state, ws_url
        self.stop, self.ready = threading.Event(), threading.Event()
        self.events: list[tuple[float, str]] = []
        self.ws_messages: list[float] = []
        self.ws_thread = threading.Thread(target=self._ws, daemon=True)

    def run(self) -> None:
        self.ws_thread.start()
        with self.state.subscribe() as sub:
            self.ready.set()
            while not self.stop.is_set():
                data = sub.get(timeout=0.1)
                if data:
                    ev = json.loads(data)
                    self.events.append((time.time(), ev.get("kind", "")))

    def _ws(self) -> None:
        import websocket

        deadline = time.monotonic() + 30
        while True:
            try:
                ws = websocket.create_connection(self.ws_url, timeout=1)
                break
            except Exception:  # noqa: BLE001 - the web server is still starting
                if time.monotonic() > deadline:
                    return
                time.sleep(0.2)
        while not self.stop.is_set():
            try:
                msg = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            except Exception:  # noqa: BLE001
                break
            if msg and '"type":"job"' in msg.replace(" ", ""):
                self.ws_messages.append(time.time())
        ws.close()


def _spawn(cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(cmd, env=env, cwd=REPO, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _stop(p: subprocess.Popen, timeout: float = 20) -> None:
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()


def _gaps(records: dict[str, dict], sent: float, slots_of: dict[str, int]) -> tuple[list[float], list[float]]:
    """(first-round latencies, later gaps): each node's tasks in start order take its earliest-free slot."""
    first, later = [], []
    by_node: dict[str, list[dict]] = {}
    for r in records.values():
        by_node.setdefault(r.get("worker") or "?", []).append(r)
    for node, rs in by_node.items():
        free = [(sent, True)] * slots_of.get(node, 1)
        heapq.heapify(free)
        for r in sorted(rs, key=lambda r: r["started"]):
            at, fresh = heapq.heappop(free)
            (first if fresh else later).append(max(0.0, r["started"] - at))
            heapq.heappush(free, (r.get("finished", r["started"]), False))
    return first, later


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far (their threads included)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def idle_publish_seconds(app, p) -> float:
    """Seconds this process takes to publish ``p``'s chord header with nothing else running.

    In the rehearsal every worker slot shares this machine's two cores with the process that
    publishes the chord, which then publishes several times slower than a main instance with a
    machine of its own would. The messages go to a queue no worker reads, which is then deleted."""
    from segenc.distributed.tasks import job_signature

    queue = f"segenc.rehearsal.idle-{os.getpid()}"
    header = job_signature(app, p, "unused").tasks
    t = time.perf_counter()
    for sig in header:
        sig.apply_async(queue=queue)
    seconds = time.perf_counter() - t
    with app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)
    return seconds


def _command_calls(client) -> dict[str, int]:
    """Redis calls so far, per command (INFO commandstats)."""
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in client.info("commandstats").items()}


def rehearse(slots: int, per_node: int, cal: dict, info, ladder, root: Path, redis_url: str, web_url: str,
             scale: float, logs: Path) -> dict[str, Any]:
    from segenc import layout
    from segenc.distributed import make_app
    from segenc.distributed.state import JobState, connect
    from segenc.distributed.tasks import job_signature
    from segenc.plan import plan as make_plan
    from segenc.settings import Settings
    from segenc.stages import Stage
    from segenc.storage import atomic_path

    from .projection import predict

    state = JobState.from_url(redis_url)
    nodes = max(1, round(slots / per_node))
    sizes = [slots // nodes + (1 if i < slots % nodes else 0) for i in range(nodes)]
    names = [f"slots{slots}-n{i}" for i in range(nodes)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEGENC_")}
    fit = cal["fit"]
    dur = info.duration
    model = predict(cal, info, ladder, "auto", slots, concat="serial", dispatch=cal["dispatch"],
                    settings_base=cal["settings"])
    app = make_app(redis_url, root=root)
    idle = make_plan(info, tuple(ladder), Settings(), job_id=str(uuid.uuid4()), workdir="idle", workers=slots)
    idle_publish = idle_publish_seconds(app, idle)
    procs = []
    for name, n in zip(names, sizes):
        cmd = [sys.executable, "-m", "benchmarks.rehearsal_worker", "--name", name, "--root", str(root),
               "--redis-url", redis_url, "--slots", str(n), "--fit-a", repr(fit["a"]), "--fit-b", repr(fit["b"]),
               "--audio-rate", repr(cal["audio_rate"]), "--concat-seconds", repr(model["concat"]),
               "--time-scale", repr(scale)]
        procs.append(_spawn(cmd, env, logs / f"{name}.log"))
    try:
        deadline = time.monotonic() + 120
        while (state.capacity() or 0) < slots:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"rehearsal: worker nodes for {slots} slots did not come up; see {logs}")
            time.sleep(0.3)
        replies = {}
        while len(replies) < nodes and time.monotonic() < deadline:
            replies = app.control.inspect(timeout=1).ping() or {}
        job_id = str(uuid.uuid4())
        workdir = layout.work_dir(job_id)
        t_plan = time.perf_counter()
        p = make_plan(info, tuple(ladder), Settings(), job_id=job_id, workdir=workdir, workers=slots)
        plan_s = time.perf_counter() - t_plan
        plan_path = root / layout.plan_file(workdir)
        plan_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(plan_path) as tmp:
            tmp.write_text(p.to_json())
        state.create(job_id, stage=Stage.ENCODING, tasks_total=len(p.tasks))
        counter = EventCounter(state, web_url.replace("http://", "ws://") + "/ws")
        counter.start()
        counter.ready.wait(5)
        time.sleep(1.0)  # the WebSocket connects
        sampler = Sampler(connect(redis_url, decode_responses=False))
        sampler.start()
        cpu0 = _cpu_seconds([pr.pid for pr in procs])
        calls0 = _command_calls(sampler.client)
        sent = time.time()
        result = job_signature(app, p, layout.encoded_dir(job_id)).apply_async()
        published = time.time()  # every header message is on the broker
        while not result.ready():
            if state.stage(job_id) in (Stage.FAILED, Stage.CANCELLED):
                raise SystemExit(f"rehearsal job failed: {state.snapshot(job_id).get('error')}")
            time.sleep(0.01)
        done = time.time()
        cpu1 = _cpu_seconds([pr.pid for pr in procs])
        calls1 = _command_calls(sampler.client)
        if result.failed():
            raise SystemExit(f"rehearsal job failed: {result.result}")
        time.sleep(0.5)
        sampler.stop.set()
        counter.stop.set()
        sampler.join(2)
        counter.join(2)
        records = state.task_records(job_id)
        backups = state.backups(job_id)
    finally:
        for pr in procs:
            _stop(pr)
    first, later = _gaps(records, sent, dict(zip(names, sizes)))
    finishes = [r["finished"] for r in records.values() if "finished" in r]
    concat_at = next((t for t, k in counter.events if k == "stage" and t > max(finishes, default=sent)), None)
    # The CONCATENATING stage event is the first stage event after the last task is done.
    stage_times = sorted(t for t, k in counter.events if k == "stage")
    concat_at = next((t for t in stage_times if t >= max(finishes, default=sent) - 0.001), concat_at)
    ops = [s for s in sampler.samples if sent <= s[0] <= done] or sampler.samples
    commands = (ops[-1][1] - ops[0][1]) if len(ops) > 1 else 0
    window = done - sent
    ev_in = [t for t, _ in counter.events if sent <= t <= done]
    ws_in = [t for t in counter.ws_messages if sent <= t <= done]
    def span(m: dict) -> float:  # the modelled chord-sent -> done, with the sleeps scaled like the rehearsal's
        if scale == 1:
            return m["encode"] + m["chord"] + m["concat"]
        first = m["dispatch_first"]
        return first + (m["encode"] - first) * scale + m["chord"] + m["concat"] * scale

    model["dispatch_first"] = cal["dispatch"]["first_start"]
    expected = span(model)
    # For the model: the first task's latency (the rest of the first round waits for its message:
    # one every publish / tasks seconds), a slot's gap between tasks, the chord delay.
    measured_dispatch = {"first_start": min(first) if first else float("nan"),
                         "gap": statistics.median(later) if later else float("nan"),
                         "chord": (concat_at - max(finishes)) if concat_at and finishes else float("nan"),
                         "publish": (published - sent) / len(p.tasks)}
    recal = predict(cal, info, ladder, "auto", slots, concat="serial", dispatch=measured_dispatch,
                    settings_base=cal["settings"])
    return {
        "slots": slots, "nodes": nodes, "slots_per_node": sizes, "tasks": len(p.tasks), "segments": len(p.segments),
        "chunk_seconds": p.settings.chunk_seconds, "plan_s": plan_s, "time_scale": scale,
        "wall_s": window, "model_s": expected, "error_pct": 100 * (window - expected) / expected,
        "model_calibrated_s": span({**recal, "dispatch_first": measured_dispatch["first_start"]}),
        "dispatch_first_ms": {"min": 1e3 * min(first, default=float("nan")),
                              "median": 1e3 * (statistics.median(first) if first else float("nan")),
                              "p95": 1e3 * _pct(first, 0.95),
                              "max": 1e3 * max(first, default=float("nan")), "n": len(first)},
        "dispatch_gap_ms": {"median": 1e3 * measured_dispatch["gap"], "p95": 1e3 * _pct(later, 0.95),
                            "max": 1e3 * max(later, default=float("nan")), "n": len(later)},
        "chord_ms": 1e3 * measured_dispatch["chord"], "publish_ms": 1e3 * (published - sent),
        "publish_idle_ms": 1e3 * idle_publish, "publish_idle_tasks": len(idle.tasks),
        "redis_ops_per_s": commands / window if window else float("nan"),
        # Which commands the job cost, per task (the sampler's INFO calls are a few per second).
        "redis_calls_per_task": dict(sorted(((k, (v - calls0.get(k, 0)) / len(p.tasks)) for k, v in calls1.items()
                                             if v > calls0.get(k, 0)), key=lambda kv: -kv[1])),
        "redis_ops_per_s_peak": max((s[2] for s in ops), default=0),
        "events": len(ev_in), "events_per_s": len(ev_in) / window if window else float("nan"),
        "ws_messages": len(ws_in), "ws_messages_per_s": len(ws_in) / window if window else float("nan"),
        "backups": len(backups),
        # What coordination costs the nodes: their CPU from the chord sent to the job done, per task.
        "node_cpu_s": cpu1 - cpu0, "node_cpu_ms_per_task": 1e3 * (cpu1 - cpu0) / len(p.tasks),
        "node_cpu_share": (cpu1 - cpu0) / (window * (os.cpu_count() or 1)) if window else float("nan"),
        "model": {k: model[k] for k in ("encode", "chord", "concat", "tasks", "longest", "longest_task")},
        "dispatch_used_by_model": cal["dispatch"],
    }


def run(args: argparse.Namespace) -> int:
    from service.redis_server import RedisServer, free_port

    from .machine import machine_info, machine_line
    from .projection import add_arguments as projection_args, calibrate, synthetic_info

    scale = args.time_scale or (0.25 if args.quick else 1.0)
    pp = argparse.ArgumentParser()
    projection_args(pp)
    pargs = pp.parse_args(["--minutes", str(args.minutes)])
    pargs.rehearsal = "none"  # calibrate from the stored runs and cluster.json, not from an earlier rehearsal
    problems: list[str] = []
    cal = calibrate(pargs, problems)
    inp = cal["input"]
    infos = {audio: synthetic_info(args.minutes * 60, inp["width"], inp["height"], inp["fps"], inp["gop"] or 60,
                                   bytes_per_second=inp["bytes_per_second"], has_audio=audio)
             for audio in {"both": (True, False), "yes": (True,), "no": (False,)}[args.audio]}
    ladder = cal["ladder"]
    base = Path(os.environ.get("TMPDIR", "/tmp")) / f"segenc-rehearsal-{os.getpid()}"
    root, logs = base / "storage", base / "logs"
    root.mkdir(parents=True)
    logs.mkdir()
    rows = []
    with RedisServer(base / "redis") as redis_server:
        port = free_port()
        web_env = {k: v for k, v in os.environ.items() if not k.startswith("SEGENC_")}
        web_env.update(SEGENC_REDIS_URL=redis_server.url, SEGENC_TMP_DIR=str(root), SEGENC_CLUSTER_SECRET="rehearsal")
        web = _spawn([sys.executable, "-m", "gunicorn", "--worker-class", "gevent", "--workers", "1",
                      "--worker-connections", "4000", "--bind", f"127.0.0.1:{port}", "--timeout", "0",
                      "--log-level", "warning", "service.app:create_app()"], web_env, logs / "web.log")
        try:
            for slots in sorted({int(s) for s in args.slots.split(",")}):
                for audio, info in infos.items():
                    print(f"rehearsal: {slots} slots, {'with' if audio else 'without'} the audio track ...", flush=True)
                    row = rehearse(slots, args.per_node, cal, info, ladder, root, redis_server.url,
                                   f"http://127.0.0.1:{port}", scale, logs)
                    row["audio"] = audio
                    print(f"  {row['tasks']} tasks, wall {row['wall_s']:.2f} s vs model {row['model_s']:.2f} s "
                          f"({row['error_pct']:+.1f}%), first dispatch median {row['dispatch_first_ms']['median']:.1f} ms, "
                          f"chord {row['chord_ms']:.1f} ms, publish {row['publish_ms']:.0f} ms, "
                          f"Redis {row['redis_ops_per_s']:.0f} ops/s", flush=True)
                    rows.append(row)
        finally:
            _stop(web)
    mach = machine_info()
    headers = ["slots", "audio", "nodes", "tasks", "chunk", "wall s", "model s", "error", "model (rehearsal dispatch) s",
               "first dispatch min / median / p95 / max ms", "chord publish ms", "publish alone ms", "later gap median / p95 ms", "chord ms", "node CPU ms per task (share of the machine)", "Redis ops/s (peak)",
               "events/s", "WS msgs/s", "backups"]
    table = [[r["slots"], "yes" if r["audio"] else "no", r["nodes"], r["tasks"], f"{r['chunk_seconds']:g} s", r["wall_s"], r["model_s"],
              f"{r['error_pct']:+.1f}%", r["model_calibrated_s"],
              f"{r['dispatch_first_ms']['min']:.1f} / {r['dispatch_first_ms']['median']:.1f} / "
              f"{r['dispatch_first_ms']['p95']:.1f} / {r['dispatch_first_ms']['max']:.1f}", f"{r['publish_ms']:.0f}",
              f"{r['publish_idle_ms']:.0f}" if "publish_idle_ms" in r else "",
              f"{r['dispatch_gap_ms']['median']:.1f} / {r['dispatch_gap_ms']['p95']:.1f}", f"{r['chord_ms']:.1f}",
              f"{r['node_cpu_ms_per_task']:.1f} ({100 * r['node_cpu_share']:.0f}%)" if "node_cpu_s" in r else "",
              f"{r['redis_ops_per_s']:.0f} ({r['redis_ops_per_s_peak']:.0f})", f"{r['events_per_s']:.0f}",
              f"{r['ws_messages_per_s']:.1f}", r["backups"]] for r in rows]
    cmd = "python -m benchmarks rehearsal " + " ".join(sys.argv[2:]) if len(sys.argv) > 2 else \
        "python -m benchmarks rehearsal"
    md = f"""# rehearsal: coordination at {args.slots} worker slots (no encoding)

**Coordination only.** The worker slots sleep for the modelled time of each task (the
projection's fit: a = {cal['fit']['a']:.3f} s, b = {cal['fit']['b'] * 1e9:.3f} s per 1e9 cost units; audio
{cal['audio_rate']:.4f} s per source second; concat as modelled); no pixel is encoded, nothing is
probed or split. Everything else is segenc's own: the planner ({args.minutes:g} min
{inp['width']}x{inp['height']} {inp['fps']:g} fps, ladder {','.join(ladder)}, with its AAC track (in parts, runs of
them a task: {cal['audio_rate'] * args.minutes * 60:.1f} s of audio encoding in all) and without it, planned for the slot count), the chord over a
real redis-server, worker nodes with their leases, done markers, commit claims, heartbeats,
watchdog and backups (threads pool, {args.per_node} slots per node), the events channel and the web
server's WebSocket relay (one client).

- **command**: `{cmd}`; time scale {scale:g} (every sleep x {scale:g})
- **machine**: {machine_line(mach)}
- **model**: the projection's first dispatch + list schedule + chord delay + concat for the same plan
  (dispatch from {cal['dispatch'].get('from')}), x the time scale; probe and split are not part of
  either figure.

{md_table(headers, table)}

Model (rehearsal dispatch) = the same model with the dispatch measured here: the first task's
latency, one header message every (chord publish / tasks), the median gap, the chord delay.
Dispatch: first = chord sent -> a first-round task's start; chord publish = the chord's
apply_async (every header message on the broker); publish alone = the same number of header
messages published before the worker nodes start, into a queue nobody reads (the publisher with
the machine to itself, as a main instance would have it: the projection models this one); later gap = a slot's previous task done
-> its next start (each node's tasks in start order given its earliest-free slot). Chord = the last
task done -> the finish step's start. Node CPU = the worker nodes' own CPU seconds (every slot's
coordination: messages, leases, state, events) from the chord sent to the job done, per task, and
as a share of all this machine's cores: near 100% the slots queue for CPU, and the gaps grow
with it (on a real cluster every node has its own). Redis ops/s = commands processed during the job / its wall.

Redis calls per task, by command (the ten most frequent; INFO commandstats over the job):

{md_table(["slots", "audio", "calls per task", "top commands"],
          [[r["slots"], "yes" if r["audio"] else "no", f"{sum(r['redis_calls_per_task'].values()):.1f}",
            ", ".join(f"{k} {v:.1f}" for k, v in list(r["redis_calls_per_task"].items())[:10])] for r in rows])}
"""
    data = {"figure": "rehearsal", "args": vars(args), "machine": mach, "calibration": {
        "fit": {k: cal["fit"][k] for k in ("a", "b")}, "audio_rate": cal["audio_rate"], "dispatch": cal["dispatch"]},
        "rows": rows, "problems": problems}
    print(md)
    if not args.no_save:
        md_path, json_path = write_results(args.tag, md, data, Path(args.results_dir))
        print(f"wrote {md_path} and {json_path}")
    import shutil

    shutil.rmtree(base, ignore_errors=True)
    return 0


register("rehearsal", help="coordination at 64/256 worker slots: real Redis, planner, chord, leases, events; "
                           "encode steps sleep the modelled time", add_arguments=add_arguments, run=run)
