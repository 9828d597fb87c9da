"""The service under load: many WebSockets, stalled uploads, a short job behind long ones, a full disk.

Real parts only: a main instance started with ``start_service.py`` (redis-server, a Celery worker,
gunicorn) on loopback, clients on raw sockets held open by this process.

- connections: N WebSockets (handshake done, frames drained by one reader thread) and M uploads
  that send their headers and 1 MB of a bigger body, then nothing; meanwhile ``/healthz`` and
  ``/api/status/<job>`` are timed (fresh connection per request, 15 s timeout, p50/p99/max).
- stalled uploads: when the server drops each one (it closes the socket or answers), and whether
  its partial file is gone from ``uploads/``.
- fairness: four long clips uploaded, then a short one; its wall time from upload to done vs alone.
- disk full (``--disk``, needs permission to mount a tmpfs): an upload bigger than the disk, then a
  job that fills it while splitting; ``/healthz`` polled throughout; free space before/after.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from .inputs import DEFAULT_CACHE, InputSpec, ensure_input
from .machine import machine_info, machine_line
from .registry import register
from .report import md_table, text_table, write_results

REPO = Path(__file__).resolve().parent.parent


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--websockets", type=int, default=500, help="WebSockets held open (default 500)")
    p.add_argument("--stalled", type=int, default=50, help="uploads that stall after 1 MB (default 50)")
    p.add_argument("--samples", type=int, default=100, help="timed requests per endpoint (default 100)")
    p.add_argument("--idle-seconds", type=float, default=None,
                   help="upload idle timeout given to the service (default: the service's own)")
    p.add_argument("--long-seconds", type=float, default=40.0, help="length of each long clip (default 40)")
    p.add_argument("--short-seconds", type=float, default=5.0, help="length of the short clip (default 5)")
    p.add_argument("--skip", default="", help="comma-separated phases to skip: connections,fairness,disk")
    p.add_argument("--quick", action="store_true", help="100 WebSockets, 10 stalled uploads, 10 s long clips")


# --- an instance -----------------------------------------------------------------------------------------------

class Instance:
    def __init__(self, tmp: Path, port: int, proc: subprocess.Popen, log: Path):
        self.tmp, self.port, self.proc, self.log = tmp, port, proc, log

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 15.0):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, data
        finally:
            c.close()

    def json(self, path: str):
        status, data = self.request("GET", path)
        return status, json.loads(data)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def instance(tmp: Path, env_extra: dict[str, str] | None = None, concurrency: int = 2):
    port = _free_port()
    log = tmp.parent / f"{tmp.name}-service.log"
    env = {k: v for k, v in os.environ.items() if k not in ("SEGENC_API_TOKEN", "SEGENC_REDIS_URL")}
    env["SEGENC_RUNTIME_DIR"] = str(tmp.parent / f"{tmp.name}-runtime")
    env.update(env_extra or {})
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "start_service.py"), "--port", str(port), "--tmp-dir",
                                 str(tmp), "--redis-port", "0", "--concurrency", str(concurrency)],
                                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    inst = Instance(tmp, port, proc, log)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"service exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                st, w = inst.json("/api/workers")
                if st == 200 and any(x["online"] for x in w["workers"]):
                    break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"service did not come up:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield inst
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


# --- raw clients -----------------------------------------------------------------------------------------------

def open_websocket(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
    s.setblocking(False)
    return s


class Drainer(threading.Thread):
    """Reads (and discards) whatever the server sends on many sockets; notes when each one closes."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sel = selectors.DefaultSelector()
        self.closed: dict[int, float] = {}
        self.received: dict[int, bytes] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def add(self, s: socket.socket, keep: bool = False) -> None:
        s.setblocking(False)
        with self.lock:
            self.sel.register(s, selectors.EVENT_READ, keep)

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                if not self.sel.get_map():
                    events = []
                else:
                    events = self.sel.select(timeout=0.05)
            if not events:
                time.sleep(0.02)
                continue
            for key, _ in events:
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if key.data and data:
                    self.received[s.fileno()] = self.received.get(s.fileno(), b"") + data[:4096]
                if not data:
                    with self.lock:
                        self.closed[s.fileno()] = time.monotonic()
                        self.sel.unregister(s)


def stalled_upload(port: int, total: int = 20 << 20, first: int = 1 << 20) -> socket.socket:
    """POST /api/upload announcing ``total`` bytes; send ``first`` of them, then nothing."""
    boundary = uuid.uuid4().hex
    pre = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"stall.mp4\"\r\n"
           f"Content-Type: video/mp4\r\n\r\n").encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall((f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {total}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n").encode() + pre)
    s.sendall(b"\0" * (first - len(pre)))
    return s


def timed(inst: Instance, path: str, n: int) -> dict:
    times, failures = [], 0
    for _ in range(n):
        t0 = time.perf_counter()
        try:
            status, _ = inst.request("GET", path, timeout=15)
            ok = status < 500
        except OSError:
            ok = False
        dt = time.perf_counter() - t0
        times.append(dt)
        failures += not ok
        if failures >= 5:  # the server is not answering: say so, do not wait 15 s a hundred times
            break
        time.sleep(0.02)
    times.sort()
    return {"p50_ms": statistics.median(times) * 1000, "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))]
            * 1000, "max_ms": times[-1] * 1000, "failures": failures, "n": len(times)}


def parts_left(tmp: Path) -> int:
    return sum(1 for _ in (tmp / "uploads").glob("*/source.part"))


def connections(inst: Instance, n_ws: int, n_stall: int, samples: int, drop_wait: float) -> dict:
    drain = Drainer()
    drain.start()
    ws, ws_failed = [], 0
    t0 = time.monotonic()
    for _ in range(n_ws):
        try:
            s = open_websocket(inst.port)
            ws.append(s)
            drain.add(s)
        except OSError:
            ws_failed += 1
            if ws_failed >= 3:  # the server takes no more: stop trying (each try waits 10 s)
                break
    ws_open_s = time.monotonic() - t0
    stalls, started = [], time.monotonic()
    stall_failed = 0
    for _ in range(n_stall):
        try:
            s = stalled_upload(inst.port)
            stalls.append(s)
            drain.add(s, keep=True)
        except OSError:
            stall_failed += 1
            if stall_failed >= 3:
                break
    time.sleep(1.0)
    job = str(uuid.uuid4())
    health = timed(inst, "/healthz", samples)
    status = timed(inst, f"/api/status/{job}", samples)
    jobs_list = timed(inst, "/api/jobs", max(10, samples // 4))
    ws_alive = sum(1 for s in ws if s.fileno() not in drain.closed)
    parts_during = parts_left(inst.tmp)
    # Wait for the stalled uploads to be dropped.
    deadline = started + drop_wait
    fds = [s.fileno() for s in stalls]
    while time.monotonic() < deadline and not all(f in drain.closed for f in fds):
        time.sleep(0.5)
    dropped = [drain.closed[f] - started for f in fds if f in drain.closed]
    time.sleep(1.0)
    answers = sorted({drain.received.get(f, b"").split(b"\r\n", 1)[0].decode(errors="replace") for f in fds})
    out = {"websockets": n_ws, "websockets_open": len(ws), "websocket_failures": ws_failed,
           "websockets_open_after": ws_alive, "ws_open_seconds": ws_open_s,
           "stalled": n_stall, "stall_failures": stall_failed, "partial_files_during": parts_during,
           "healthz": health, "status": status, "jobs": jobs_list,
           "dropped": len(dropped), "drop_max_s": max(dropped) if dropped else None,
           "drop_min_s": min(dropped) if dropped else None, "partial_files_after": parts_left(inst.tmp),
           "stall_answers": answers}
    drain.stop.set()
    for s in ws + stalls:
        s.close()
    return out


# --- fairness --------------------------------------------------------------------------------------------------

def upload(inst: Instance, clip: Path, ladder: str = "240p,360p") -> str:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"ladder\"\r\n\r\n{ladder}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{clip.name}\"\r\n"
            f"Content-Type: video/mp4\r\n\r\n").encode() + clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    status, data = inst.request("POST", "/api/upload", body=body,
                                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, timeout=120)
    if status != 202:
        raise RuntimeError(f"upload answered {status}: {data[:300]!r}")
    return json.loads(data)["job_id"]


def wait_done(inst: Instance, job_id: str, timeout: float = 600) -> tuple[dict, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, st = inst.json(f"/api/status/{job_id}")
        if st["status"] in ("done", "failed", "cancelled"):
            return st, time.monotonic()
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} not finished")


def fairness(inst: Instance, long_clip: Path, short_clip: Path, n_long: int = 4) -> dict:
    t0 = time.monotonic()
    alone = upload(inst, short_clip)
    st, t1 = wait_done(inst, alone)
    alone_s = t1 - t0
    longs = [upload(inst, long_clip) for _ in range(n_long)]
    time.sleep(1.0)
    t0 = time.monotonic()
    short = upload(inst, short_clip)
    started = None
    while True:
        _, st = inst.json(f"/api/status/{short}")
        if started is None and st["status"] not in ("queued",):
            started = time.monotonic() - t0
        if st["status"] in ("done", "failed", "cancelled"):
            break
        time.sleep(0.2)
    behind_s = time.monotonic() - t0
    long_walls = []
    for j in longs:
        stl, t = wait_done(inst, j)
        long_walls.append(stl["status"])
    return {"alone_s": alone_s, "behind_s": behind_s, "start_s": started, "ratio": behind_s / alone_s,
            "short_status": st["status"], "long_status": long_walls, "n_long": n_long}


# --- disk full -------------------------------------------------------------------------------------------------

def disk(work: Path, clip: Path, big: int) -> dict:
    mnt = work / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=60m,mode=0700", "tmpfs", str(mnt)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return {"skipped": f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}"}
    try:
        tmp = mnt / "encoder"
        with instance(tmp) as inst:
            free_before = shutil.disk_usage(tmp).free
            health: list[tuple[float, int]] = []
            stop = threading.Event()

            def poll():
                while not stop.is_set():
                    t = time.monotonic()
                    try:
                        st, _ = inst.request("GET", "/healthz", timeout=5)
                    except OSError:
                        st = 0
                    health.append((t, st))
                    time.sleep(0.2)

            th = threading.Thread(target=poll, daemon=True)
            th.start()
            # 1. an upload that cannot fit
            boundary = uuid.uuid4().hex
            pre = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\r\n")
            s = socket.create_connection(("127.0.0.1", inst.port), timeout=30)
            s.sendall((f"POST /api/upload HTTP/1.1\r\nHost: x\r\nContent-Length: {big}\r\n"
                       f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n{pre}").encode())
            head = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
            s.close()
            # 2. a job whose split fills the disk
            try:
                jid = upload(inst, clip)
                st, _ = wait_done(inst, jid, 300)
                job = {"status": st["status"], "error": st["error"]}
            except RuntimeError as exc:
                job = {"status": "refused", "error": str(exc)}
            time.sleep(2.0)
            # 3. a small job afterwards
            stop.set()
            th.join()
            free_after = shutil.disk_usage(tmp).free
            work_left = sorted(p.name for p in (tmp / "work").iterdir())
            ok = sum(1 for _, c in health if c == 200)
            return {"big_upload_answer": head, "job": job, "healthz_ok": ok, "healthz_total": len(health),
                    "free_before": free_before, "free_after": free_after, "work_left": work_left,
                    "service_alive": inst.proc.poll() is None}
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def noise_clip(path: Path, seconds: float, width: int = 320, height: int = 240) -> Path:
    """Random pixels, lossless: ~3.5 MB a second, so a few seconds fill a small disk."""
    rng = np.random.default_rng(7)
    with av.open(str(path), "w") as oc:
        st = oc.add_stream("libx264", rate=30)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        st.codec_context.time_base = Fraction(1, 30)
        st.codec_context.options = {"crf": "0", "preset": "ultrafast", "g": "30"}
        for i in range(int(seconds * 30)):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), format="rgb24")
            f.pts = i
            for p in st.encode(f):
                oc.mux(p)
        for p in st.encode(None):
            oc.mux(p)
    return path


# --- the figure ------------------------------------------------------------------------------------------------

def run(args: argparse.Namespace) -> int:
    if args.quick:
        args.websockets, args.stalled, args.long_seconds = min(args.websockets, 100), min(args.stalled, 10), 10.0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    DEFAULT_CACHE.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="service-load-", dir=DEFAULT_CACHE))
    data: dict = {"machine": machine_info(), "args": vars(args) | {"func": None}}
    env = {"SEGENC_MAX_UPLOADS_PER_CLIENT": str(args.stalled + 10)}
    if args.idle_seconds:
        env["SEGENC_UPLOAD_IDLE_SECONDS"] = str(args.idle_seconds)
    try:
        if "connections" not in skip:
            with instance(work / "conn", env) as inst:
                print(f"connections: {args.websockets} WebSockets + {args.stalled} stalled uploads", flush=True)
                data["connections"] = connections(inst, args.websockets, args.stalled, args.samples, 75.0)
                print(json.dumps(data["connections"], indent=1), flush=True)
        if "fairness" not in skip:
            long_clip = ensure_input(InputSpec(width=640, height=360, seconds=args.long_seconds))
            short_clip = ensure_input(InputSpec(width=640, height=360, seconds=args.short_seconds))
            with instance(work / "fair") as inst:
                print("fairness: short clip alone, then behind long ones", flush=True)
                data["fairness"] = fairness(inst, long_clip, short_clip)
                print(json.dumps(data["fairness"], indent=1), flush=True)
        if "disk" not in skip:
            clip = noise_clip(work / "noise.mp4", 9.0)  # ~31 MB: fits as an upload, not twice
            print(f"disk: 60 MB tmpfs; source {clip.stat().st_size / 1e6:.1f} MB", flush=True)
            data["disk"] = disk(work, clip, 200 << 20)
            print(json.dumps(data["disk"], indent=1), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    md = report(data, args)
    write_results("service-load", md, data)
    print("wrote benchmarks/results/service-load.md")
    return 0


def report(data: dict, args) -> str:
    rows = []
    c = data.get("connections")
    if c:
        p99 = max(c["healthz"]["p99_ms"], c["status"]["p99_ms"])
        fails = c["healthz"]["failures"] + c["status"]["failures"]
        rows.append((f"`/healthz` and `/api/status` p99 while {c['websockets_open']} WebSockets are open and "
                     f"{c['stalled']} uploads stall", f"{p99:.0f} ms ({fails} failed)", "< 200 ms",
                     "met" if p99 < 200 and not fails and c["websockets_open"] == c["websockets"] else "missed"))
        drop = c["drop_max_s"]
        rows.append(("a stalled upload is dropped and its file removed",
                     f"{c['dropped']}/{c['stalled']} dropped, last at {drop:.1f} s; {c['partial_files_after']} "
                     f"partial files left" if drop is not None else f"0/{c['stalled']} dropped", "within 60 s",
                     "met" if c["dropped"] == c["stalled"] and drop < 60 and not c["partial_files_after"] else "missed"))
    f = data.get("fairness")
    if f:
        rows.append((f"{args.short_seconds:g} s clip behind {f['n_long']} {args.long_seconds:g} s clips",
                     f"{f['behind_s']:.1f} s vs {f['alone_s']:.1f} s alone = {f['ratio']:.2f}x (started after "
                     f"{f['start_s']:.1f} s)", "done within 3x its time alone", "met" if f["ratio"] <= 3 else "missed"))
    d = data.get("disk")
    if d and "skipped" not in d:
        back = d["free_after"] >= d["free_before"] - (1 << 20)
        rows.append(("disk full: the service answers `/healthz` throughout; free space after the failed job",
                     f"{d['healthz_ok']}/{d['healthz_total']} answered; free {d['free_before'] / 1e6:.1f} MB before, "
                     f"{d['free_after'] / 1e6:.1f} MB after", "100% of it; back to what it was before the upload",
                     "met" if d["healthz_ok"] == d["healthz_total"] and back else "missed"))
    elif d:
        rows.append(("disk full", d["skipped"], "", "skipped"))
    headers = ("figure", "measured", "target", "")
    print(text_table(headers, rows))
    lines = ["# service-load: the service under many connections, stalled uploads, queued jobs, a full disk", "",
             f"- **machine**: {machine_line(data['machine'])}",
             f"- **command**: `python -m benchmarks service-load {' '.join(sys.argv[2:])}`".rstrip(),
             "- a real main instance (`start_service.py`: redis-server, a Celery worker with 2 processes, "
             "gunicorn) on loopback; clients on raw sockets held open by the benchmark", "",
             md_table(headers, rows), ""]
    if c:
        lines += ["## Connections", "", md_table(("endpoint", "p50 ms", "p99 ms", "max ms", "failed"), [
            (name, c[k]["p50_ms"], c[k]["p99_ms"], c[k]["max_ms"], f"{c[k]['failures']}/{c[k]['n']}")
            for name, k in (("/healthz", "healthz"), ("/api/status/<id>", "status"), ("/api/jobs", "jobs"))]), "",
            f"WebSockets: {c['websockets_open']}/{c['websockets']} handshakes completed in "
            f"{c['ws_open_seconds']:.1f} s, {c['websockets_open_after']} still open after the timing. "
            f"Stalled uploads: {c['stalled'] - c['stall_failures']} started, {c['partial_files_during']} partial "
            f"files while stalled, {c['dropped']} dropped (first {c['drop_min_s']}, last {c['drop_max_s']} s), "
            f"answers {c['stall_answers']}; {c['partial_files_after']} partial files left.", ""]
    if d and "skipped" not in d:
        lines += ["## Disk full", "", f"Upload of 200 MB announced on a 60 MB tmpfs: `{d['big_upload_answer']}`. "
                  f"A job that fills the disk: {d['job']}. `work/` left: {d['work_left']}. "
                  f"Service alive afterwards: {d['service_alive']}.", ""]
    return "\n".join(lines)


register("service-load", help="the service under many WebSockets, stalled uploads, queued jobs and a full disk",
         description=__doc__, add_arguments=add_arguments, run=run)
