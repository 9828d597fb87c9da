"""A worker node for the scale rehearsal ONLY (``python -m benchmarks rehearsal``).

It is segenc's real worker (the real tasks, leases, done markers, commit claims, chord, events,
heartbeats and watchdog) on a thread pool of many slots, except that the two steps doing media
work are replaced, in this process only, by stand-ins that SLEEP for the modelled time and write
empty chunk files: the encode step sleeps ``a + b x cost`` (the projection's fit) per task, the
audio task ``audio_rate x (its parts' duration + one lead-in)``, the finish step ``concat`` seconds. What it measures is
coordination, never encoding. Nothing in segenc or the service can switch this on: the
replacement happens here, in a process that only this benchmark starts.

    python -m benchmarks.rehearsal_worker --name N --root DIR --redis-url URL --slots 64 \\
        --fit-a A --fit-b B --audio-rate R --concat-seconds C
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.rehearsal_worker")
    p.add_argument("--name", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--redis-url", required=True)
    p.add_argument("--slots", type=int, required=True)
    p.add_argument("--fit-a", type=float, required=True)
    p.add_argument("--fit-b", type=float, required=True)
    p.add_argument("--audio-rate", type=float, required=True)
    p.add_argument("--concat-seconds", type=float, required=True)
    p.add_argument("--time-scale", type=float, default=1.0)
    args = p.parse_args(argv)

    from segenc.distributed import make_app, run_worker
    from segenc.distributed import tasks
    from segenc.distributed.app import DEFAULT_QUEUE, MAIN_QUEUE
    from segenc.model import ChunkResult, EncodeResult, task_cost
    from segenc.plan import AUDIO_LEAD_SECONDS
    from segenc.progress import ProgressEvent
    from segenc.stages import Stage
    from segenc.storage import resolve

    scale = args.time_scale

    def sleeping_encode(specs, root, report, worker=None):
        """Stand-in for steps.encode_chunks: the modelled time, asleep; empty outputs."""
        specs = list(specs)
        if specs[0].kind == "audio":
            seconds = args.audio_rate * (sum(s.duration for s in specs) + AUDIO_LEAD_SECONDS)  # as the projection
        else:
            seconds = args.fit_a + args.fit_b * task_cost(specs)
        seconds = max(0.0, seconds) * scale  # (a fit's negative intercept must not make a sleep negative)
        for s in specs:
            report(ProgressEvent(s.job_id, "chunk_started", chunk_id=s.chunk_id,
                                 rendition=s.rendition.name if s.rendition else None, worker=worker))
        time.sleep(seconds / 2)
        for s in specs:
            if s.rendition:
                report(ProgressEvent(s.job_id, "frames", chunk_id=s.chunk_id, rendition=s.rendition.name,
                                     frames=s.frames // 2, worker=worker))
        time.sleep(seconds / 2)
        out = []
        for s in specs:
            path = resolve(root, s.output)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
            report(ProgressEvent(s.job_id, "chunk_done", chunk_id=s.chunk_id,
                                 rendition=s.rendition.name if s.rendition else None, frames=s.frames, worker=worker))
            out.append(ChunkResult(s.chunk_id, s.output, s.frames, 0, seconds, worker or ""))
        return out

    def sleeping_finish(plan, results, root, out_dir, report=None, concatenated=None):
        """Stand-in for steps.finish: checks every chunk came back, sleeps the modelled concat."""
        if report:
            report(ProgressEvent(plan.job_id, "stage", stage=Stage.CONCATENATING))
        got = {r.chunk_id for r in results}
        missing = [c.chunk_id for c in plan.specs() if c.chunk_id not in got]
        if missing:
            raise RuntimeError(f"rehearsal: chunks missing from the chord's results: {missing[:5]}")
        time.sleep(args.concat_seconds * scale)
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        return EncodeResult(out_dir=str(out_dir), manifest="", source={}, renditions=(), segments=len(plan.segments),
                            chunk_seconds=plan.settings.chunk_seconds or 0.0,
                            timings={"concat": args.concat_seconds * scale})

    tasks.encode_chunks = sleeping_encode  # this process only
    tasks.finish = sleeping_finish
    app = make_app(args.redis_url, root=args.root, worker_name=args.name)
    run_worker(app, args.name, args.slots, loglevel="WARNING", queues=(DEFAULT_QUEUE, MAIN_QUEUE), pool="threads")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
