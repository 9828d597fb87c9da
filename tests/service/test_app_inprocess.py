"""The fast tier: the Flask app in this process (``create_app`` + ``test_client``) against a real
redis-server, for validation, auth and status codes. No worker runs: nothing here encodes."""

from __future__ import annotations

import io
import uuid

import pytest

from segenc import layout
from segenc.distributed.transfer import HASH_HEADER, ROUTE
from segenc.stages import TERMINAL, Stage
from service.app import create_app
from service.redis_server import RedisServer
from tests.mediagen import make_clip

TOKEN, SECRET = "t0ken", "s3cret"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis-inproc"))
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def app(redis_url, tmp_path):
    for sub in ("uploads", "encoded", "work"):
        (tmp_path / sub).mkdir()
    return create_app({"TMP_DIR": str(tmp_path), "REDIS_URL": redis_url, "API_TOKEN": TOKEN,
                       "MAX_UPLOAD_MB": 1, "CLUSTER_SECRET": SECRET})


@pytest.fixture
def client(app):
    c = app.test_client()
    c.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {TOKEN}"
    return c


def test_api_needs_the_token(app):
    anon = app.test_client()
    for path in ("/api/jobs", f"/api/status/{uuid.uuid4()}", "/api/workers"):
        r = anon.get(path)
        assert r.status_code == 401 and r.get_json() == {"error": "missing or wrong API token"}
    assert anon.get("/api/jobs?token=wrong").status_code == 401
    assert anon.get(f"/api/jobs?token={TOKEN}").status_code == 200
    health = anon.get("/healthz").get_json()
    assert health["ok"] is True and health["redis"] is True


def test_page_carries_the_stage_vocabulary(app):
    html = app.test_client().get("/").get_data(as_text=True)
    assert '"terminal": ["cancelled", "done", "failed"]' in html
    assert all(f'"{s.value}"' in html for s in Stage)
    assert set(TERMINAL) == {"cancelled", "done", "failed"}


def test_upload_validation_is_400_and_leaves_no_folder(client, tmp_path):
    r = client.post("/api/upload", data={}, content_type="multipart/form-data")
    assert r.status_code == 400 and "no file" in r.get_json()["error"]
    r = client.post("/api/upload", data={"file": (io.BytesIO(b"x" * 100), "a.mp4"), "ladder": "999p"},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "unknown ladder" in r.get_json()["error"]
    r = client.post("/api/upload", data={"file": (io.BytesIO(b"x" * 100), "a.mp4"), "chunk_seconds": "0"},
                    content_type="multipart/form-data")
    assert r.status_code == 400 and "chunk_seconds" in r.get_json()["error"]
    r = client.post("/api/upload", data={"file": (io.BytesIO(b"not a video" * 100), "notes.txt")},
                    content_type="multipart/form-data")
    assert r.status_code in (415, 422) and r.get_json()["error"].startswith("not a video file"), r.get_json()
    assert "source" not in r.get_json()["error"]  # the name on disk is not the client's business
    assert list((tmp_path / "uploads").iterdir()) == []


def test_upload_over_the_limit_is_413_json(client, tmp_path):
    r = client.post("/api/upload", data={"file": (io.BytesIO(b"\0" * (2 << 20)), "big.mp4")},
                    content_type="multipart/form-data")
    assert r.status_code == 413 and "1 MB limit" in r.get_json()["error"]
    assert list((tmp_path / "uploads").iterdir()) == []


def test_a_good_upload_is_queued_once_with_its_probe(client, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", seconds=1.0, width=160, height=120)
    r = client.post("/api/upload", data={"file": (open(clip, "rb"), "c.mp4"), "ladder": "240p"},
                    content_type="multipart/form-data")
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["job_id"]
    assert (tmp_path / layout.upload(job_id)).is_file()
    view = client.get(f"/api/status/{job_id}").get_json()
    assert view["status"] == "queued" and view["source"]["frames"] == 30 and view["source"]["width"] == 160
    assert job_id in [j["job_id"] for j in client.get("/api/jobs").get_json()["jobs"]]
    assert client.get(f"/api/video/{job_id}/240p").status_code == 409  # not done: no worker here
    assert client.delete(f"/api/jobs/{job_id}").get_json() == {"job_id": job_id, "deleted": True}
    assert not (tmp_path / layout.upload_dir(job_id)).exists()
    assert client.get(f"/api/status/{job_id}").get_json()["status"] == "cancelled"  # tombstone, for chunks
    assert job_id not in [j["job_id"] for j in client.get("/api/jobs").get_json()["jobs"]]


@pytest.mark.parametrize("path, status", [
    ("/api/status/not-a-uuid", 400), (f"/api/status/{uuid.uuid4()}", 404), ("/api/jobs?page=x", 400),
    (f"/api/video/{uuid.uuid4()}/240p", 404), (f"/api/video/{uuid.uuid4()}/999x", 404),
    ("/api/video/..%2F..%2Fetc/240p", 404), ("/api/nope", 404),
])
def test_bad_requests_get_json_errors(client, path, status):
    r = client.get(path)
    assert r.status_code == status and isinstance(r.get_json()["error"], str)


def test_transfer_needs_the_cluster_secret_and_a_layout_path(app, tmp_path):
    c = app.test_client()
    job = str(uuid.uuid4())
    seg = layout.segment(layout.work_dir(job), 0)
    (tmp_path / seg).parent.mkdir(parents=True)
    (tmp_path / seg).write_bytes(b"segment")
    assert c.get(f"{ROUTE}/{seg}").status_code == 401
    assert c.get(f"{ROUTE}/{seg}", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = {"Authorization": f"Bearer {SECRET}"}
    r = c.get(f"{ROUTE}/{seg}", headers=ok)
    assert r.status_code == 200 and r.data == b"segment" and len(r.headers[HASH_HEADER]) == 64
    assert c.get(f"{ROUTE}/{layout.plan_file(layout.work_dir(job))}", headers=ok).status_code == 404
    chunk = layout.chunk(layout.work_dir(job), "240p", 0)
    assert c.put(f"{ROUTE}/{chunk}", data=b"abc", headers={**ok, HASH_HEADER: "0" * 64}).status_code == 422
    assert not (tmp_path / chunk).exists()
