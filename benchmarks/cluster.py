"""The distributed runner's overheads: dispatch latency, chord completion delay, scaling.

Real parts only: a redis-server (service.redis_server), Celery worker nodes started with
``start_service.py --worker-name`` (one process each, so a node name is a process), and the
CeleryRunner. Times come from the progress events, stamped on this one machine's clock:

- dispatch latency: enqueue (the ``encoding`` event, just before the chord is sent) to the
  first chunk start on each idle worker, and, between tasks, a worker's previous chunk done to
  its next chunk start (what the queue costs a busy worker);
- chord completion delay: the last chunk done to the chord body's start (``concatenating``);
- scaling: wall time of the same job with 1 worker process vs 2, alternating, medians.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from .inputs import DEFAULT_CACHE, InputSpec, ensure_input, parse_size
from .machine import machine_info, machine_line
from .registry import register
from .report import md_table, text_table, write_results

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=20.0, help="length of the scaling clip (default 20)")
    p.add_argument("--size", default="1280x720", help="size of the scaling clip (default 1280x720)")
    p.add_argument("--repeat", type=int, default=2, help="runs per variant for scaling (default 2)")
    p.add_argument("--chunk-seconds", type=float, default=2.0, help="segment length (default 2)")
    p.add_argument("--quick", action="store_true", help="6 s clips, 1 repeat")


def worker_nodes(names: list[str], root: Path, url: str, logs: Path) -> list:
    """Worker nodes of one encoding process each on ``root``, online once they answer a Celery ping
    (the consumer is up: an idle node takes a task at once, which the latency figures assume)."""
    from service.harness import WorkerNode

    return [WorkerNode(n, root, redis_url=url, concurrency=1, ping=True, log=logs / f"{n}.log") for n in names]


def _job(app, url: str, root: Path, clip: Path, out: Path, chunk: float) -> tuple[float, list]:
    import segenc
    from segenc.distributed import CeleryRunner

    events: list = []
    t0 = time.perf_counter()
    segenc.encode(clip, out, ("480p", "720p"), runner=CeleryRunner(url, root, app=app, timeout=900),
                  chunk_seconds=chunk, on_progress=events.append)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return wall, events


def _latencies(events: list) -> dict:
    enqueued = next(e.time for e in events if e.kind == "stage" and e.stage == "encoding")
    concat = next(e.time for e in events if e.kind == "stage" and e.stage == "concatenating")
    starts: dict[str, list[float]] = {}
    dones: dict[str, list[float]] = {}
    for e in events:
        if e.kind == "chunk_started":
            starts.setdefault(e.worker, []).append(e.time)
        elif e.kind == "chunk_done":
            dones.setdefault(e.worker, []).append(e.time)
    first = [min(t) - enqueued for t in starts.values()]
    gaps = []
    for w, ts in starts.items():
        ends = sorted(set(dones.get(w, [])))
        for s in sorted(ts)[1:]:
            prev = [d for d in ends if d <= s]
            if prev:
                gaps.append(s - prev[-1])
    last_done = max(e.time for e in events if e.kind == "chunk_done")
    return {"first_start_ms": [round(x * 1000, 2) for x in first], "gap_ms": [round(x * 1000, 2) for x in gaps],
            "chord_delay_ms": round((concat - last_done) * 1000, 2)}


def run(args: argparse.Namespace) -> int:
    from segenc.distributed import make_app
    from service.harness import start_all, stop_all
    from service.redis_server import RedisServer

    if args.quick:
        args.seconds, args.repeat = 6.0, 1
    w, h = parse_size(args.size)
    clip = ensure_input(InputSpec(width=w, height=h, seconds=args.seconds))
    tiny = ensure_input(InputSpec(width=320, height=240, seconds=max(6.0, args.seconds / 2)))
    work = Path(tempfile.mkdtemp(prefix="cluster-", dir=DEFAULT_CACHE))
    root = work / "storage"
    root.mkdir()
    server = RedisServer(work / "redis")
    server.start()
    nodes = worker_nodes(["bench_w1", "bench_w2"], root, server.url, work)
    try:
        app = make_app(server.url, root=root)
        start_all(nodes)
        # Latency: many tiny tasks, two idle single-process workers.
        lat = [_latencies(_job(app, server.url, root, tiny, work / "out", 0.5)[1]) for _ in range(3)]
        first = [x for r in lat for x in r["first_start_ms"]]
        gaps = [x for r in lat for x in r["gap_ms"]]
        chord = [r["chord_delay_ms"] for r in lat]
        # Scaling: the same job with one worker process, then two, alternating.
        walls: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.repeat):
            for n in (1, 2):
                if n == 1:
                    stop_all(nodes[1:])
                else:
                    start_all(nodes[1:])
                walls[n].append(_job(app, server.url, root, clip, work / "out", args.chunk_seconds)[0])
                print(f"  {n} worker process(es): {walls[n][-1]:.2f} s", flush=True)
    finally:
        stop_all(nodes)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    med = {n: statistics.median(v) for n, v in walls.items()}
    rows = [
        ("dispatch latency, enqueue -> first start on an idle worker (median)", f"{statistics.median(first):.1f} ms",
         "< 20 ms"),
        ("dispatch latency, chunk done -> next start on the same worker (median)",
         f"{statistics.median(gaps):.1f} ms" if gaps else "-", "< 20 ms"),
        ("chord completion delay, last chunk done -> concat start (median)", f"{statistics.median(chord):.1f} ms",
         "< 200 ms"),
        (f"wall, 1 worker process ({args.seconds:g} s {args.size}, 480p+720p)", f"{med[1]:.2f} s", ""),
        ("wall, 2 worker processes", f"{med[2]:.2f} s", ""),
        ("scaling = 1 worker wall / 2 workers wall", f"{med[1] / med[2]:.2f}x", ">= 1.9x"),
    ]
    headers = ("figure", "measured", "target")
    print(text_table(headers, rows))
    m = machine_info()
    md = "\n".join([
        "# cluster: Celery runner overheads and scaling", "",
        f"- **machine**: {machine_line(m)}",
        f"- **command**: `python -m benchmarks cluster {' '.join(sys.argv[2:])}`".rstrip(),
        "- real redis-server, real worker nodes (`start_service.py --worker-name`, 1 process each)", "",
        md_table(headers, rows), "",
        f"Samples: first starts {first} ms; gaps {gaps} ms; chord delays {chord} ms; walls {walls}.", ""])
    write_results("cluster", md, {"machine": m, "first_start_ms": first, "gap_ms": gaps, "chord_delay_ms": chord,
                                  "walls": walls, "args": vars(args) | {"func": None}})
    print("wrote benchmarks/results/cluster.md")
    return 0


register("cluster", help="Celery runner: dispatch latency, chord completion delay, 1 vs 2 workers",
         description=__doc__, add_arguments=add_arguments, run=run)
