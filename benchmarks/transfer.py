"""Transfer mode vs shared storage: what fetching segments and uploading chunks over HTTP costs.

A real main instance (``start_service.py``: Redis, web server, one worker process) plus one more
worker process, either on the main instance's tmp dir (shared storage, reads files directly) or
on its own tmp dir (its samples of the source fetched by byte range, chunks uploaded, over
loopback HTTP). The same clip is
uploaded through the API and timed from upload to ``done``, alternating the two, medians.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from .inputs import DEFAULT_CACHE, InputSpec, ensure_input, parse_size
from .machine import machine_info, machine_line
from .registry import register
from .report import md_table, text_table, write_results

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=20.0, help="clip length (default 20)")
    p.add_argument("--size", default="1280x720", help="clip size (default 1280x720)")
    p.add_argument("--repeat", type=int, default=2, help="runs per mode (default 2)")
    p.add_argument("--quick", action="store_true", help="6 s clip, 1 run per mode")


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def upload(base: str, clip: Path, ladder: str = "480p,720p", chunk_seconds: str = "2") -> str:
    """POST ``clip`` to a main instance's /api/upload (stdlib only); returns the job id."""
    boundary = "segencbench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"ladder\"\r\n\r\n{ladder}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"chunk_seconds\"\r\n\r\n{chunk_seconds}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"clip.mp4\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{base}/api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())["job_id"]


def _mode(clip: Path, shared: bool, work: Path) -> tuple[float, int]:
    from segenc.distributed import JobState
    from service.harness import MainInstance

    tmp = work / ("shared" if shared else "main")
    try:
        # Two workers online (the main instance's own and the extra one) before the upload.
        with MainInstance(tmp, concurrency=1, runtime_dir=work / "runtime") as main, \
                main.worker("bench_extra", tmp if shared else work / "elsewhere", concurrency=1):
            base = main.url
            t0 = time.perf_counter()
            job = upload(base, clip)
            deadline = time.monotonic() + 900
            while (status := _get(f"{base}/api/status/{job}")["status"]) not in ("done", "failed"):
                if time.monotonic() > deadline:
                    raise RuntimeError("timed out waiting for the job")
                time.sleep(0.1)
            wall = time.perf_counter() - t0
            if status != "done":
                raise RuntimeError("the job failed")
            return wall, JobState.from_url(main.redis_url).transferred()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(work / "elsewhere", ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.seconds, args.repeat = 6.0, 1
    w, h = parse_size(args.size)
    clip = ensure_input(InputSpec(width=w, height=h, seconds=args.seconds))
    work = Path(tempfile.mkdtemp(prefix="transfer-", dir=DEFAULT_CACHE))
    walls: dict[str, list[float]] = {"shared": [], "transfer": []}
    moved: list[int] = []
    try:
        for _ in range(args.repeat):
            for mode in ("shared", "transfer"):
                wall, b = _mode(clip, mode == "shared", work)
                walls[mode].append(wall)
                if mode == "transfer":
                    moved.append(b)
                print(f"  {mode}: {wall:.2f} s, {b / 1e6:.1f} MB over HTTP", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in walls.items()}
    per_second = statistics.median(moved) / args.seconds
    rows = [("wall, shared storage (median)", f"{med['shared']:.2f} s", ""),
            ("wall, transfer over HTTP (median)", f"{med['transfer']:.2f} s", ""),
            ("transfer / shared wall", f"{med['transfer'] / med['shared']:.3f}", "<= 1.05"),
            ("bytes moved per encoded second", f"{per_second / 1e6:.2f} MB/s of video", ""),
            ("bytes moved / source bytes (in: byte ranges of the source; out: chunks)",
             f"{statistics.median(moved) / clip.stat().st_size:.3f}", "")]
    headers = ("figure", "measured", "target")
    print(text_table(headers, rows))
    m = machine_info()
    md = "\n".join(["# transfer: HTTP chunk transfer vs shared storage", "",
                    f"- **machine**: {machine_line(m)}",
                    f"- **input**: {args.seconds:g} s {args.size}, ladder 480p+720p, 2 s segments; main instance "
                    f"(1 worker process) + 1 extra worker process; source {clip.stat().st_size / 1e6:.1f} MB", "",
                    md_table(headers, rows), "", f"Samples: {walls}; bytes moved {moved}.", ""])
    write_results("transfer", md, {"machine": m, "walls": walls, "bytes_moved": moved,
                                   "args": vars(args) | {"func": None}})
    print("wrote benchmarks/results/transfer.md")
    return 0


register("transfer", help="workers without shared storage: HTTP transfer vs shared storage",
         description=__doc__, add_arguments=add_arguments, run=run)
