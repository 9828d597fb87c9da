"""The service under load and on a full disk, against real main instances (start_service.py).

Clients are raw sockets held open by the test: WebSockets after their handshake, uploads that
announce a big body, send a part of it and then nothing. A full disk is a real 60 MB tmpfs."""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from pathlib import Path

import pytest
import requests

from benchmarks.service_load import Drainer, noise_clip, open_websocket, stalled_upload
from service.redis_server import RedisServer
from tests import disks
from tests.service.conftest import running_instance

pytestmark = pytest.mark.service


def read_answer(s: socket.socket, timeout: float) -> tuple[int, dict]:
    """The HTTP status and JSON body the server sends on ``s`` (blocking, bounded)."""
    s.setblocking(True)
    s.settimeout(timeout)
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@pytest.mark.timeout(180)
def test_websockets_and_stalled_uploads_do_not_starve_the_api(tmp_path_factory):
    env = {"SEGENC_UPLOAD_IDLE_SECONDS": "3", "SEGENC_MAX_UPLOADS_PER_CLIENT": "40"}
    with running_instance(tmp_path_factory.mktemp("load"), env_extra=env) as inst:
        drain = Drainer()
        drain.start()
        ws = [open_websocket(inst.port) for _ in range(150)]  # a gthread server took 32, then hung
        for s in ws:
            drain.add(s)
        t0 = time.monotonic()
        stalls = [stalled_upload(inst.port) for _ in range(30)]
        parts = list((inst.tmp_dir / "uploads").glob("*/source.part"))
        worst = 0.0
        for path in ("/healthz", f"/api/status/{uuid.uuid4()}", "/api/jobs"):
            for _ in range(10):
                t = time.perf_counter()
                r = requests.get(inst.url + path, timeout=5)
                worst = max(worst, time.perf_counter() - t)
                assert r.status_code in (200, 404), r.text
        assert worst < 1.0, f"slowest API answer {worst:.2f} s with 150 WebSockets and 30 stalled uploads"
        assert requests.get(inst.url + "/healthz", timeout=5).json()["disk_free_bytes"] > 0
        assert len(parts) > 0, "the stalled uploads should have started writing"
        answers = [read_answer(s, 20) for s in stalls]
        dropped_after = time.monotonic() - t0
        assert all(st == 408 for st, _ in answers), answers[:3]
        assert "nothing sent for 3 s" in answers[0][1]["error"]
        assert dropped_after < 20
        assert list((inst.tmp_dir / "uploads").glob("*/source.part")) == []
        assert list((inst.tmp_dir / "uploads").iterdir()) == []
        # The WebSockets are still open and still served.
        assert sum(1 for s in ws if s.fileno() not in drain.closed) == len(ws)
        drain.stop.set()
        for s in ws:
            s.close()


@pytest.mark.timeout(120)
def test_concurrent_uploads_per_client_are_bounded(tmp_path_factory, small_clip):
    env = {"SEGENC_MAX_UPLOADS_PER_CLIENT": "2", "SEGENC_UPLOAD_IDLE_SECONDS": "20"}
    with running_instance(tmp_path_factory.mktemp("bounded"), env_extra=env) as inst:
        held = [stalled_upload(inst.port) for _ in range(2)]
        time.sleep(0.5)
        third = stalled_upload(inst.port, first=4096)
        status, body = read_answer(third, 10)
        assert status == 429
        assert "too many uploads at once" in body["error"] and "at most 2" in body["error"]
        for s in held:
            s.close()
        deadline = time.monotonic() + 10
        while True:  # the held slots come back once the server sees the clients gone
            r = inst.upload(small_clip, ladder="240p")
            if r.status_code != 429 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert r.status_code == 202, r.text


@pytest.mark.parametrize("query", ["page=99999999999999999999", "page=0", "page=-1", "limit=0", "limit=201",
                                   "limit=99999999999999999999"])
def test_out_of_range_paging_is_400_json(service, query):
    r = service.get(f"/api/jobs?{query}")
    assert r.status_code == 400, r.text
    assert "between" in r.json()["error"]


# --- a full disk -----------------------------------------------------------------------------------------------

@pytest.fixture
def tmpfs(tmp_path):
    with disks.tmpfs(tmp_path, "60m") as mnt:
        yield mnt


@pytest.fixture
def outside_redis(tmp_path):
    """Redis off the tmpfs: these tests are about the job's files, not Redis persistence."""
    srv = RedisServer(tmp_path / "redis")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _free(path: Path) -> int:
    return shutil.disk_usage(path).free


@pytest.mark.timeout(300)
def test_full_disk_upload_encode_and_recovery(tmpfs, outside_redis, tmp_path, small_clip):
    big = noise_clip(tmp_path / "noise.mp4", 9.0)
    assert 25e6 < big.stat().st_size < 44e6, big.stat().st_size  # fits as an upload, not twice
    storage = tmpfs / "encoder"
    with running_instance(storage, extra=["--redis-url", outside_redis.url]) as inst:
        before = _free(storage)
        # 1. An upload announced bigger than the free space: 507 before any byte is stored.
        s = stalled_upload(inst.port, total=200 << 20, first=4096)
        status, body = read_answer(s, 10)
        assert status == 507 and "not enough free space" in body["error"], body
        assert list((storage / "uploads").iterdir()) == []
        # 2. A job whose encode fills the disk (its lossless chunks are as big as the upload, which
        # its tasks read in place: nothing is split): a clear error, no files left, the space comes back.
        r = inst.upload(big, ladder="240p", crf="0", preset="ultrafast")
        assert r.status_code == 202, r.text
        st = inst.wait_done(r.json()["job_id"], timeout=180)
        assert st["status"] == "failed"
        assert "no space left on the storage" in st["error"], st["error"]
        assert "reading failed" not in st["error"]
        assert requests.get(inst.url + "/healthz", timeout=5).status_code == 200
        deadline = time.monotonic() + 20
        while (list((storage / "work").iterdir()) or _free(storage) < before - (1 << 20)) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list((storage / "work").iterdir()) == []
        assert list((storage / "uploads").iterdir()) == []
        assert _free(storage) >= before - (1 << 20), (before, _free(storage))
        # 3. Later uploads work again.
        r = inst.upload(small_clip, ladder="240p")
        assert r.status_code == 202, r.text
        assert inst.wait_done(r.json()["job_id"])["status"] == "done"
