"""Workers without shared storage: the seed's commands verbatim, two hosts, broken transfers."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from segenc.errors import EncodeError
from segenc.steps import prepare
from segenc.distributed.transfer import HASH_HEADER, Transfer, sha256_file
from tests import checks
from tests.mediagen import make_clip
from tests.service.conftest import REPO, WorkerNode, running_instance

pytestmark = [pytest.mark.service, pytest.mark.dist, pytest.mark.timeout(400)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("src") / "clip.mp4", width=640, height=360, seconds=6.0)


def start_worker(name: str, tmp_dir: Path, env: dict, *args: str, prefix: list[str] | None = None) -> WorkerNode:
    return WorkerNode(name, tmp_dir, concurrency=1, args=args, env=env, prefix=prefix or ()).start()


def wait_online(inst, names, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        online = {w["name"] for w in inst.get("/api/workers").json()["workers"] if w["online"]}
        if set(names) <= online:
            return
        assert time.monotonic() < deadline, f"workers {names} not online: {online}"
        time.sleep(0.3)


def run_job(inst, clip, **form):
    job = inst.upload(clip, ladder="240p,360p", chunk_seconds="1", **form).json()["job_id"]
    seen: set[str] = set()
    deadline = time.monotonic() + 240
    while (st := inst.get(f"/api/status/{job}").json())["status"] not in ("done", "failed", "cancelled"):
        seen.update(st["workers"])
        assert time.monotonic() < deadline, st
        time.sleep(0.05)
    return job, st, seen


def assert_exact(inst, job, clip):
    frames = checks.frame_count(clip)
    for q in ("240p", "360p"):
        out = inst.tmp_dir / "encoded" / job / f"{q}.mp4"
        assert checks.frame_count(out) == frames
        assert checks.packet_dts_monotonic(out)
    assert sorted(p.name for p in (inst.tmp_dir / "encoded" / job).iterdir()) == checks.output_names(["240p", "360p"])


def test_seed_commands_verbatim_give_a_working_cluster(tmp_path):
    """Main on one tmp dir, two workers on two others, no --redis-url: they find it and take chunks."""
    # 12 segments for 3 workers, each decoding 720p: enough work that none of them finds the queue empty
    clip = make_clip(tmp_path / "ten.mp4", width=1280, height=720, seconds=12.0)
    runtime = tmp_path / "runtime"
    env = dict(os.environ, SEGENC_RUNTIME_DIR=str(runtime))
    with running_instance(tmp_path / "encoder", runtime_dir=runtime, extra=["--concurrency", "1"]) as inst:
        workers = [start_worker(f"encoder_worker_{i}", tmp_path / f"encoder_{i}", env) for i in (1, 2)]
        try:
            wait_online(inst, ["encoder_worker_1", "encoder_worker_2"])
            job, st, seen = run_job(inst, clip)
            assert st["status"] == "done", st
            assert {"encoder_worker_1", "encoder_worker_2"} <= seen, seen
            assert_exact(inst, job, clip)
            # Transferred copies are cleaned up once the job has ended.
            deadline = time.monotonic() + 20
            while left := [p for i in (1, 2) for p in (tmp_path / f"encoder_{i}" / "remote").rglob("*") if p.is_file()]:
                assert time.monotonic() < deadline, f"worker-local copies were not cleaned up: {left}"
                time.sleep(0.5)
        finally:
            for w in workers:
                w.stop()


def test_worker_without_a_main_instance_says_so(tmp_path):
    env = dict(os.environ, SEGENC_RUNTIME_DIR=str(tmp_path / "nothing"))
    r = subprocess.run([sys.executable, str(REPO / "start_service.py"), "--worker-name", "w", "--tmp-dir",
                        str(tmp_path / "w")], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.startswith("error: no main instance found") and len(r.stderr.strip().splitlines()) == 1


def test_wrong_secret_is_refused_and_bad_uploads_never_land(tmp_path, clip):
    with running_instance(tmp_path / "encoder", runtime_dir=tmp_path / "rt") as inst:
        secret = json.loads((inst.tmp_dir / "cluster.json").read_text())["cluster_secret"]
        job = str(uuid.uuid4())
        (inst.tmp_dir / "work" / job / "segments").mkdir(parents=True)
        seg = inst.tmp_dir / "work" / job / "segments" / "s0000.mkv"
        seg.write_bytes(os.urandom(300_000))
        url = f"{inst.url}/internal/files/work/{job}/segments/s0000.mkv"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401
        ok = requests.get(url, headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        assert ok.status_code == 200 and ok.content == seg.read_bytes()
        assert ok.headers[HASH_HEADER] == sha256_file(seg)
        # Only work files by strict pattern: no uploads, no traversal.
        for bad in ("uploads/x/source", f"work/{job}/../../cluster.json", "work/../redis.conf"):
            r = requests.get(f"{inst.url}/internal/files/{bad}", headers={"Authorization": f"Bearer {secret}"},
                             timeout=10)
            assert r.status_code in (400, 404)
        # An upload whose body does not match its hash is refused and nothing lands.
        put = f"{inst.url}/internal/files/work/{job}/chunks/240p/s0000.ts"
        r = requests.put(put, data=b"x" * 1000, timeout=10,
                         headers={"Authorization": f"Bearer {secret}", HASH_HEADER: "0" * 64})
        assert r.status_code == 422
        assert not (inst.tmp_dir / "work" / job / "chunks" / "240p" / "s0000.ts").exists()
        assert list((inst.tmp_dir / "work" / job / "chunks" / "240p").iterdir()) == []
        r = requests.put(put, data=b"x" * 1000, timeout=10, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        with pytest.raises(EncodeError, match="secret"):
            Transfer(inst.url, "wrong", tmp_path / "cache", tries=2).fetch(f"work/{job}/segments/s0000.mkv")
        good = Transfer(inst.url, secret, tmp_path / "cache")
        assert good.fetch(f"work/{job}/segments/s0000.mkv").read_bytes() == seg.read_bytes()
        # A source read by byte range: only the one its plan names, one bounded range at a time.
        read = str(uuid.uuid4())
        (inst.tmp_dir / "uploads" / read).mkdir(parents=True)
        src = Path(shutil.copy(clip, inst.tmp_dir / "uploads" / read / "source"))
        assert prepare(src, inst.tmp_dir, job_id=read, ladder=("240p",)).source == f"uploads/{read}/source"
        body, size = src.read_bytes(), src.stat().st_size
        url = f"{inst.url}/internal/source/{read}"
        auth = {"Authorization": f"Bearer {secret}"}
        assert requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10).status_code == 401
        r = requests.get(url, headers={**auth, "Range": "bytes=1000-1999"}, timeout=10)
        assert r.status_code == 206 and r.content == body[1000:2000]
        assert r.headers["Content-Range"] == f"bytes 1000-1999/{size}"
        assert r.headers[HASH_HEADER] == hashlib.sha256(body[1000:2000]).hexdigest()
        for rng in ("", "bytes=100-", f"bytes=0-{size}", "bytes=0-99,200-299", f"bytes=0-{64 << 20}"):
            r = requests.get(url, headers={**auth, "Range": rng}, timeout=10)
            assert r.status_code == 416 and "error" in r.json(), rng
        for other in ("not-a-job", str(uuid.uuid4()), job):  # a malformed id, an unknown job, a job without a plan
            assert requests.get(f"{inst.url}/internal/source/{other}", headers={**auth, "Range": "bytes=0-9"},
                                timeout=10).status_code == 404
        dest = tmp_path / "sparse"
        assert good.fetch_ranges(read, [(0, 10), (size - 10, size)], dest) == size
        got = dest.read_bytes()
        assert len(got) == size and got[:10] == body[:10] and got[-10:] == body[-10:] and got[10:-10].count(0) == size - 20


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves a payload, but the first answers are corrupted, then truncated mid-body."""

    payload = b""
    plan: list[str] = []
    served: list[str] = []

    def do_GET(self):
        how = self.plan.pop(0) if self.plan else "good"
        self.served.append(how)
        body = self.payload
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
        digest = sha256_file_bytes(body)
        part = body[start:]
        if how == "corrupt":
            part = bytes([part[0] ^ 0xFF]) + part[1:]
        self.send_response(206 if start else 200)
        self.send_header(HASH_HEADER, digest)
        self.send_header("Content-Length", str(len(part)))
        self.end_headers()
        if how == "truncate":
            self.wfile.write(part[: len(part) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(part)

    def log_message(self, *a):
        pass


def sha256_file_bytes(b: bytes) -> str:
    import hashlib

    return hashlib.sha256(b).hexdigest()


def test_corrupted_or_truncated_download_is_detected_and_redone(tmp_path):
    FlakyHandler.payload = os.urandom(2_000_000)
    FlakyHandler.plan = ["corrupt", "truncate"]
    FlakyHandler.served = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        t = Transfer(f"http://127.0.0.1:{server.server_port}", "s", tmp_path, tries=5)
        got = t.fetch("work/j/segments/s0000.mkv")
        assert got.read_bytes() == FlakyHandler.payload
        assert FlakyHandler.served == ["corrupt", "truncate", "good"]
        assert [p.name for p in got.parent.iterdir()] == ["s0000.mkv"]  # no temp files left
    finally:
        server.shutdown()


NS = "segenc-test-b"


def _netns_available() -> str | None:
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2 to make network namespaces"
    r = subprocess.run(["ip", "netns", "add", NS + "-probe"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"network namespaces are not permitted here: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", NS + "-probe"])
    return None


@pytest.fixture
def second_host():
    """A network namespace joined to this one by a veth pair: host A 10.231.7.1, host B 10.231.7.2."""
    why = _netns_available()
    if why:
        pytest.skip(why)
    cmds = [["ip", "netns", "add", NS],
            ["ip", "link", "add", "segenc-va", "type", "veth", "peer", "name", "segenc-vb"],
            ["ip", "link", "set", "segenc-vb", "netns", NS],
            ["ip", "addr", "add", "10.231.7.1/24", "dev", "segenc-va"],
            ["ip", "link", "set", "segenc-va", "up"],
            ["ip", "netns", "exec", NS, "ip", "addr", "add", "10.231.7.2/24", "dev", "segenc-vb"],
            ["ip", "netns", "exec", NS, "ip", "link", "set", "segenc-vb", "up"],
            ["ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up"]]
    try:
        for c in cmds:
            subprocess.run(c, check=True, capture_output=True)
        yield ["ip", "netns", "exec", NS]
    finally:
        subprocess.run(["ip", "link", "del", "segenc-va"], capture_output=True)
        subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def test_two_hosts_without_shared_storage_complete_through_http(tmp_path, clip, second_host):
    host_a = "10.231.7.1"
    with running_instance(tmp_path / "host-a", token="tok", runtime_dir=tmp_path / "rt-a", host=host_a,
                          extra=["--host", host_a, "--redis-host", host_a, "--concurrency", "1"]) as inst:
        conn = json.loads((inst.tmp_dir / "cluster.json").read_text())
        env = dict(os.environ, SEGENC_RUNTIME_DIR=str(tmp_path / "rt-b"))
        worker = start_worker("host_b_worker", tmp_path / "host-b", env, "--redis-url", conn["redis_url"],
                              "--cluster-secret", conn["cluster_secret"], prefix=second_host)
        copies, sparse, stop = set(), set(), threading.Event()

        def watch():  # what each side holds of the source while the job runs
            while not stop.wait(0.01):
                copies.update(p.name for p in (inst.tmp_dir / "work").glob("*/segments/*"))
                copies.update(p.name for p in (inst.tmp_dir / "work").glob("*/audio-source.*"))
                sparse.update(p.name for p in (tmp_path / "host-b" / "remote").glob("*/uploads/*/source"))

        watcher = threading.Thread(target=watch, daemon=True)
        try:
            wait_online(inst, ["host_b_worker"])
            watcher.start()
            job, st, seen = run_job(inst, clip)
            assert st["status"] == "done", st
            assert "host_b_worker" in seen
            assert_exact(inst, job, clip)
            # Host B never saw the main storage: whatever it encoded came and went over HTTP, as
            # byte ranges of the source (an MP4): the main instance wrote no copy of any of it.
            assert not (tmp_path / "host-b" / "work" / job).exists()
            assert sparse == {"source"} and not copies, (sparse, copies)
        finally:
            stop.set()
            worker.stop()


def test_killing_the_web_process_mid_transfer_corrupts_nothing(tmp_path, clip):
    runtime = tmp_path / "runtime"
    env = dict(os.environ, SEGENC_RUNTIME_DIR=str(runtime))
    with running_instance(tmp_path / "encoder", runtime_dir=runtime, extra=["--concurrency", "1"]) as inst:
        worker = start_worker("remote_1", tmp_path / "elsewhere", env)
        try:
            wait_online(inst, ["remote_1"])
            job = inst.upload(clip, ladder="240p,360p", chunk_seconds="1").json()["job_id"]
            gunicorn = [p for p in psutil.Process(inst.proc.pid).children(recursive=True)
                        if "gunicorn" in " ".join(p.cmdline())]
            deadline = time.monotonic() + 60
            while "remote_1" not in requests.get(f"{inst.url}/api/status/{job}", timeout=10).json()["workers"]:
                assert time.monotonic() < deadline
                time.sleep(0.02)
            for p in gunicorn:
                if p.is_running() and p.ppid() == inst.proc.pid:
                    os.kill(p.pid, signal.SIGKILL)
            deadline = time.monotonic() + 240
            while True:
                try:
                    st = requests.get(f"{inst.url}/api/status/{job}", timeout=5).json()
                    if st["status"] in ("done", "failed"):
                        break
                except requests.RequestException:
                    pass  # the supervisor is restarting the web process
                assert time.monotonic() < deadline
                time.sleep(0.3)
            assert st["status"] == "done", st
            assert_exact(inst, job, clip)
        finally:
            worker.stop()
