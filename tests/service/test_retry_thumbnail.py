"""Retry of a failed job, thumbnails and the skipped-rung note, on a real instance."""

from __future__ import annotations

import av
import pytest
import requests

from segenc.distributed import JobState
from segenc.stages import Stage

pytestmark = [pytest.mark.service, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def done_job(service, small_clip):
    r = service.upload(small_clip, ladder="240p,360p,720p", chunk_seconds="1")
    assert r.status_code == 202, r.text
    st = service.wait_done(r.json()["job_id"])
    assert st["status"] == "done", st
    return st


def test_thumbnail_and_skipped_rungs(service, done_job):
    st = done_job
    assert st["skipped"] == ["720p"] and st["source_height"] == 360  # a 640x360 source: no 720p
    assert set(st["renditions"]) == {"240p", "360p"}
    r = service.get(st["thumbnail"])
    assert r.status_code == 200 and r.headers["Content-Type"] == "image/jpeg"
    path = service.tmp_dir / "thumb.jpg"
    path.write_bytes(r.content)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.width, s.height) == ("mjpeg", 320, 180)
    assert service.get(st["thumbnail"].replace(st["job_id"], "0" * 8 + st["job_id"][8:])).status_code == 404


def test_retry_runs_a_failed_job_again_from_its_upload(service, done_job):
    old = done_job["job_id"]
    assert requests.post(f"{service.url}/api/jobs/{old}/retry", timeout=30).status_code == 409  # done: no retry
    # The job's record says it failed (terminal stages are sticky, so it is rewritten, not applied);
    # its upload is kept as retention keeps a failed job's upload.
    JobState.from_url(service.redis_url).set(old, stage=Stage.FAILED.value, error="boom")
    assert service.get(f"/api/status/{old}").json()["status"] == "failed"
    r = requests.post(f"{service.url}/api/jobs/{old}/retry", timeout=60)
    assert r.status_code == 202, r.text
    new = r.json()["job_id"]
    assert new != old and r.json()["retried"] == old
    st = service.wait_done(new)
    assert st["status"] == "done" and set(st["renditions"]) == {"240p", "360p"}
    assert st["filename"] == done_job["filename"] and st["skipped"] == ["720p"]
    listed = [j["job_id"] for j in service.get("/api/jobs?limit=200").json()["jobs"]]
    assert new in listed and old not in listed  # deleted as a DELETE deletes (its record expires)
    assert not (service.tmp_dir / "uploads" / old).exists()
    assert (service.tmp_dir / "uploads" / new / "source").is_file()
    assert requests.post(f"{service.url}/api/jobs/{'0' * 36}/retry", timeout=30).status_code == 400
