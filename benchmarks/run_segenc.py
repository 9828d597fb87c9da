"""Runner: one ``segenc.encode`` call in its own process, reporting to a JSON file.

    python -m benchmarks.run_segenc SOURCE OUT_DIR --json RESULT.json [--workers N] [--chunk-seconds S]

The benchmark driver starts this with ``sys.executable -m`` and measures it exactly as it
measures the ffmpeg CLI (wall clock + RUSAGE_CHILDREN), so segenc's process pool is counted.
The JSON holds ``res.to_dict()`` (renditions, timings), the runner's own view of its wall and
CPU time, and a timeline of the progress events other than per-frame ones (stage changes,
chunk start/done) with times relative to the call, to see where cores sat idle.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import segenc


class EventLog:
    """``on_progress`` for the runners: every event but the per-frame ones, timed from creation."""

    def __init__(self) -> None:
        self.t0_wall = time.time()
        self.events: list[dict[str, Any]] = []
        self.frame_events = 0

    def __call__(self, ev: "segenc.ProgressEvent") -> None:
        if ev.kind == "frames":
            self.frame_events += 1
            return
        d: dict[str, Any] = {k: getattr(ev, k) for k in ("kind", "stage", "chunk_id", "rendition", "frames", "worker",
                                                         "message") if getattr(ev, k) is not None}
        d["t"] = round(ev.time - self.t0_wall, 4)
        self.events.append(d)


def segenc_identity() -> dict[str, Any]:
    """Which segenc ran: its file and a sha1 over its .py files (it may change between runs while
    it is being developed)."""
    import hashlib

    import segenc

    pkg_dir = os.path.dirname(segenc.__file__)
    h = hashlib.sha1()
    for root, dirs, files in sorted(os.walk(pkg_dir)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, pkg_dir).encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    return {"segenc_file": segenc.__file__, "segenc_source_sha1": h.hexdigest()[:12]}


def record(res: Any, log: EventLog, runner: dict[str, Any]) -> dict[str, Any]:
    """The JSON both runners write: the EncodeResult, the runner's own figures, the events."""
    return {
        "result": res.to_dict(),
        "timings": dict(res.timings),
        "renditions": [r.to_dict() for r in res.renditions],
        "segments": res.segments,
        "runner": {**runner, "pid": os.getpid(), "t0_wall": log.t0_wall},
        "events": log.events,
        "frame_events": log.frame_events,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run_segenc", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source")
    p.add_argument("out_dir")
    p.add_argument("--json", required=True, help="where to write the result")
    p.add_argument("--ladder", default="480p,720p,1080p")
    p.add_argument("--workers", type=int, default=None, help="pool size (default: segenc's, all cores)")
    p.add_argument("--chunk-seconds", type=float, default=None)
    p.add_argument("--settings", default=None, help="JSON dict of Settings fields (default: Settings())")
    p.add_argument("--no-events", action="store_true", help="do not pass on_progress")
    a = p.parse_args(argv)

    t_start = time.perf_counter()
    import segenc
    from segenc.settings import Settings
    t_import = time.perf_counter() - t_start
    identity = segenc_identity()

    settings = Settings.from_dict(json.loads(a.settings)) if a.settings else None
    log = EventLog()
    t0 = time.perf_counter()
    res = segenc.encode(a.source, a.out_dir, ladder=tuple(a.ladder.split(",")), chunk_seconds=a.chunk_seconds,
                        workers=a.workers, settings=settings, on_progress=None if a.no_events else log)
    t_encode = time.perf_counter() - t0

    self_ru = resource.getrusage(resource.RUSAGE_SELF)
    kids_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = record(res, log, {
        "import_seconds": t_import,
        "encode_call_seconds": t_encode,
        "main_process_cpu": self_ru.ru_utime + self_ru.ru_stime,
        "children_cpu": kids_ru.ru_utime + kids_ru.ru_stime,
        **identity,
    })
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
