"""Runner: one ``segenc.encode(..., runner=CeleryRunner(...))`` job on a private cluster -> JSON.

    python -m benchmarks.run_celery SOURCE OUT_DIR --json RESULT.json --work-dir DIR [--processes N]
                                    [--ladder 480p,720p] [--chunk-seconds S] [--settings JSON]

Starts a real redis-server (``service.redis_server.RedisServer``) and ``--processes`` worker
nodes (``start_service.py --worker-name ... --concurrency 1``: one encoding process each, on
the same storage root ``DIR/storage``), waits until every node answers a ping, then times the
``segenc.encode`` call alone: a deployment's workers are up before a job arrives, so their
start-up is not part of a job's latency. The job's CPU time is measured over that call only:
the worker nodes' process trees (the node process and its prefork pool children, recursively,
live ones plus what they reaped), this process's own (probe/plan/split run here) and
redis-server's. Then workers and Redis are stopped.

The JSON is what ``benchmarks.run_segenc`` writes (result, timings, renditions, segments,
runner, events) plus ``job``: the call's wall and CPU seconds, machine-wide busy core-seconds
and a /proc/stat busy-cores profile over the call.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import signal
import sys
import time
from pathlib import Path


def tree_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process ``pid`` and all its descendants, live or reaped.

    Each live process counts its own time plus that of the children it has waited for
    (``children_user``/``children_system``), so a pool child that exited and was reaped is
    still counted, once, by its parent."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return 0.0, 0.0
    user = system = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        user += t.user + t.children_user
        system += t.system + t.children_system
    return user, system


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_celery", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("out_dir")
    p.add_argument("--json", required=True, help="where to write the result")
    p.add_argument("--work-dir", required=True,
                   help="scratch: storage root shared by the workers (DIR/storage), Redis files, worker logs")
    p.add_argument("--processes", type=int, default=1, help="worker nodes, one encoding process each (default 1)")
    p.add_argument("--ladder", default="480p,720p,1080p")
    p.add_argument("--chunk-seconds", type=float, default=None)
    p.add_argument("--settings", default=None, help="JSON dict of Settings fields (default: Settings())")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds the job may take (CeleryRunner timeout)")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds for the workers to come up")
    p.add_argument("--settle", type=float, default=10.0,
                   help="after the workers answer, wait up to this long for the machine to go idle (default 10)")
    a = p.parse_args(argv)

    # A SIGTERM (e.g. from a driver giving up) still runs the finally below: no orphaned workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    t_start = time.perf_counter()
    import segenc
    from segenc.distributed import CeleryRunner, make_app
    from segenc.settings import Settings
    from service.redis_server import RedisServer

    from service.harness import WorkerNode, start_all, stop_all
    from .run_segenc import EventLog, record, segenc_identity
    from .runs import CpuSampler, wait_for_quiet
    t_import = time.perf_counter() - t_start
    identity = segenc_identity()

    settings = Settings.from_dict(json.loads(a.settings)) if a.settings else None
    work = Path(a.work_dir).absolute()
    root, logs = work / "storage", work / "logs"
    root.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    names = [f"ladder_w{i + 1}" for i in range(a.processes)]

    server = RedisServer(work / "redis")
    nodes: list = []
    try:
        server.start()
        app = make_app(server.url, root=root)
        # One encoding process each; online once they answer a Celery ping (the consumer is up).
        nodes = [WorkerNode(n, root, redis_url=server.url, concurrency=1, ping=True, log=logs / f"{n}.log")
                 for n in names]
        start_all(nodes, timeout=a.startup_timeout)
        t_online = time.perf_counter() - t_start
        settled = wait_for_quiet(window=0.5, timeout=a.settle) if a.settle > 0 else None

        runner = CeleryRunner(server.url, root, app=app, timeout=a.timeout)
        sampler = CpuSampler().start()
        w0 = {w.name: tree_cpu(w.pid) for w in nodes}
        r0 = tree_cpu(server.pid)
        s0 = resource.getrusage(resource.RUSAGE_SELF)
        log = EventLog()
        t0 = time.perf_counter()
        res = segenc.encode(a.source, a.out_dir, ladder=tuple(a.ladder.split(",")), chunk_seconds=a.chunk_seconds,
                            settings=settings, runner=runner, on_progress=log)
        wall = time.perf_counter() - t0
        s1 = resource.getrusage(resource.RUSAGE_SELF)
        w1 = {w.name: tree_cpu(w.pid) for w in nodes}
        r1 = tree_cpu(server.pid)
        sampler.stop()
    finally:
        stop_all(nodes, 20)
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work / "redis", ignore_errors=True)

    workers = {n: (w1[n][0] - w0[n][0], w1[n][1] - w0[n][1]) for n in names}
    own = (s1.ru_utime - s0.ru_utime, s1.ru_stime - s0.ru_stime)
    redis_cpu = (r1[0] - r0[0], r1[1] - r0[1])
    parts = [own, redis_cpu, *workers.values()]
    user, system = sum(x[0] for x in parts), sum(x[1] for x in parts)
    out = record(res, log, {
        "kind": "celery",
        "worker_processes": a.processes,
        "workers": names,
        "import_seconds": t_import,
        "online_seconds": t_online,   # start of this process -> every worker answered a ping
        "settle_seconds": round(settled[0], 2) if settled else 0.0,
        "encode_call_seconds": wall,
        "redis_version": ".".join(map(str, server.version)),
        **identity,
    })
    out["job"] = {
        "wall": wall,
        "user": user,
        "sys": system,
        "cpu": user + system,
        "cpu_by": {"runner": sum(own), "redis": sum(redis_cpu), **{n: sum(v) for n, v in workers.items()}},
        "t0_wall": log.t0_wall,
        "machine_busy": sampler.busy,
        "profile": sampler.profile,
    }
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
