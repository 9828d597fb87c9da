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
from typing import Any


def _event_dict(ev: Any, t0_wall: float) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for k in ("kind", "stage", "chunk_id", "rendition", "frames", "worker", "message"):
        v = getattr(ev, k, None)
        if v is not None:
            d[k] = v
    if not d:
        d["repr"] = repr(ev)[:200]
    t = getattr(ev, "time", None)
    d["t"] = round((t if isinstance(t, (int, float)) else time.time()) - t0_wall, 4)
    return d


def _source_hash(pkg_dir: str) -> str:
    """sha1 over segenc's .py files: segenc may change between runs while it is being developed."""
    import hashlib

    h = hashlib.sha1()
    for root, dirs, files in sorted(os.walk(pkg_dir)):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(root, name)
                h.update(os.path.relpath(path, pkg_dir).encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()[:12]


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
    source_hash = _source_hash(os.path.dirname(segenc.__file__)) if getattr(segenc, "__file__", None) else None

    settings = Settings.from_dict(json.loads(a.settings)) if a.settings else None
    events: list[dict[str, Any]] = []
    frame_events = 0
    t0_wall = time.time()

    def on_progress(ev: Any) -> None:
        nonlocal frame_events
        if getattr(ev, "kind", None) == "frames":
            frame_events += 1
            return
        events.append(_event_dict(ev, t0_wall))

    kwargs: dict[str, Any] = {"chunk_seconds": a.chunk_seconds, "workers": a.workers, "settings": settings}
    if not a.no_events:
        kwargs["on_progress"] = on_progress
    t0 = time.perf_counter()
    res = segenc.encode(a.source, a.out_dir, ladder=tuple(a.ladder.split(",")), **kwargs)
    t_encode = time.perf_counter() - t0

    self_ru = resource.getrusage(resource.RUSAGE_SELF)
    kids_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = {
        "result": res.to_dict() if hasattr(res, "to_dict") else None,
        "timings": dict(getattr(res, "timings", {}) or {}),
        "renditions": [r.to_dict() if hasattr(r, "to_dict") else dict(vars(r)) for r in res.renditions],
        "segments": res.segments if isinstance(getattr(res, "segments", None), int) else len(res.segments),
        "runner": {
            "import_seconds": t_import,
            "encode_call_seconds": t_encode,
            "main_process_cpu": self_ru.ru_utime + self_ru.ru_stime,
            "children_cpu": kids_ru.ru_utime + kids_ru.ru_stime,
            "pid": os.getpid(),
            "t0_wall": t0_wall,
            "segenc_file": getattr(segenc, "__file__", None),
            "segenc_source_sha1": source_hash,
        },
        "events": events,
        "frame_events": frame_events,
    }
    with open(a.json, "w") as f:
        json.dump(out, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
