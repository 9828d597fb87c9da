"""The REST API against a real main instance: upload -> done -> Range, limits, attacks, auth, restart."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid

import av
import pytest
import requests

from tests import checks
from tests.mediagen import HDR10_PQ, make_clip, write_ffconcat, write_hls_playlist, write_random_bytes

from tests.service.conftest import REPO, running_instance

pytestmark = [pytest.mark.service, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def finished(service, small_clip):
    r = service.upload(small_clip, ladder="240p,360p")
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    return job_id, service.wait_done(job_id)


def test_upload_encodes_and_streams_with_range(service, finished, small_clip):
    job_id, st = finished
    assert st["status"] == "done" and st["progress"] == 1.0 and st["error"] is None
    assert st["resent"] == []  # nothing lost, nothing sent twice (segenc.distributed.rescue)
    assert set(st["renditions"]) == {"240p", "360p"}
    src_frames = st["source"]["frames"]
    for q, r in st["renditions"].items():
        assert r["frames_done"] == r["frames_total"] == src_frames
        assert r["url"] == f"/api/video/{job_id}/{q}"
    whole = service.get(st["renditions"]["360p"]["url"])
    assert whole.status_code == 200 and whole.headers["Content-Type"] == "video/mp4"
    on_disk = (service.tmp_dir / "encoded" / job_id / "360p.mp4").read_bytes()
    assert whole.content == on_disk
    part = service.get(st["renditions"]["360p"]["url"], headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-1099/{len(on_disk)}"
    assert part.content == on_disk[100:1100]
    assert checks.frame_count(service.tmp_dir / "encoded" / job_id / "360p.mp4") == src_frames
    # The upload is stored without its client name.
    assert sorted(p.name for p in (service.tmp_dir / "uploads" / job_id).iterdir()) == ["source"]


def test_jobs_list_newest_first_and_paginated(service, finished, small_clip):
    second = service.upload(small_clip, ladder="240p").json()["job_id"]
    jobs = service.get("/api/jobs?limit=1").json()
    assert jobs["total"] >= 2 and len(jobs["jobs"]) == 1 and jobs["jobs"][0]["job_id"] == second
    page2 = service.get("/api/jobs?limit=1&page=2").json()
    assert page2["jobs"][0]["job_id"] != second
    assert service.get("/api/jobs?page=x").status_code == 400
    service.wait_done(second)


@pytest.mark.parametrize("name", ["playlist.m3u8", "playlist.mp4"])
def test_hls_playlist_upload_is_refused_and_makes_no_job(service, tmp_path, small_clip, name):
    before = service.get("/api/jobs").json()["total"]
    playlist = write_hls_playlist(tmp_path / name, small_clip)
    r = service.upload(playlist, name=name)
    assert r.status_code == 415
    assert "HLS playlist" in r.json()["error"]
    assert service.get("/api/jobs").json()["total"] == before
    assert list((service.tmp_dir / "uploads").iterdir()) == [] or all(
        (p / "source").exists() for p in (service.tmp_dir / "uploads").iterdir())


def test_ffconcat_and_garbage_are_refused(service, tmp_path, small_clip):
    r = service.upload(write_ffconcat(tmp_path / "list.mp4", small_clip))
    assert r.status_code == 415 and "ffconcat" in r.json()["error"]
    r = service.upload(write_random_bytes(tmp_path / "noise.mp4"))
    assert r.status_code == 415 and "not a video" in r.json()["error"]
    r = requests.post(service.url + "/api/upload", data={"x": "1"}, timeout=10)
    assert r.status_code == 400 and "error" in r.json()


@pytest.mark.parametrize("path", [
    "/api/status/..%2f..%2fetc%2fpasswd",
    "/api/status/%2e%2e",
    "/api/status/not-a-uuid",
    "/api/status/%2Fetc%2Fpasswd",
    "/api/video/..%2f..%2fetc/passwd",
    "/api/video/%2e%2e/%2e%2e",
    "/api/video/00000000-0000-0000-0000-000000000000/..%2f..%2f..%2fetc%2fpasswd",
    "/api/video/00000000-0000-0000-0000-000000000000/480p",
    "/api/video/ZZZZZZZZ-0000-0000-0000-000000000000/480p",
    "/api/video//etc/passwd/480p",
    "/api/jobs/../../etc/passwd",
])
def test_traversal_and_bad_ids_are_4xx(service, path):
    r = requests.get(service.url + path, timeout=10)
    assert 400 <= r.status_code < 500
    assert b"root:" not in r.content


def test_video_of_unknown_quality_or_unfinished_job(service, finished, small_clip):
    job_id, _ = finished
    assert service.get(f"/api/video/{job_id}/1080p").status_code == 404  # not in this job's ladder
    assert service.get(f"/api/video/{job_id}/999p").status_code == 404
    assert service.get(f"/api/status/{uuid.uuid4()}").status_code == 404
    fresh = service.upload(small_clip, ladder="240p").json()["job_id"]
    r = service.get(f"/api/video/{fresh}/240p")
    assert r.status_code in (409, 200)  # 200 only if it already finished
    if r.status_code == 409:
        assert "not done" in r.json()["error"]
    service.wait_done(fresh)


def test_delete_cancels_a_running_job_and_removes_its_files(service, tmp_path):
    from tests.mediagen import make_clip

    clip = make_clip(tmp_path / "longer.mp4", width=1280, height=720, seconds=8.0, audio=False)
    job_id = service.upload(clip, ladder="720p").json()["job_id"]
    deadline = time.monotonic() + 60
    while service.get(f"/api/status/{job_id}").json()["status"] in ("queued", "splitting"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    r = requests.delete(f"{service.url}/api/jobs/{job_id}", timeout=10)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert service.get(f"/api/status/{job_id}").json()["status"] == "cancelled"
    assert job_id not in [j["job_id"] for j in service.get("/api/jobs?limit=200").json()["jobs"]]
    time.sleep(3)  # running chunks notice within a second and stop
    for d in ("uploads", "encoded"):
        assert not (service.tmp_dir / d / job_id).exists()
    assert not (service.tmp_dir / "encoded" / job_id / "720p.mp4").exists()
    assert requests.delete(f"{service.url}/api/jobs/not-a-uuid", timeout=10).status_code == 400


def test_workers_endpoint_lists_the_local_worker(service):
    workers = service.get("/api/workers").json()["workers"]
    assert any(w["name"] == "main_worker" and w["online"] and w["last_heartbeat"] for w in workers)


def test_upload_over_the_limit_is_413_and_leaves_nothing(tmp_path_factory, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * (3 * 1024 * 1024))
    with running_instance(tmp_path_factory.mktemp("limited"), max_upload_mb=1) as inst:
        r = inst.upload(big)
        assert r.status_code == 413
        assert "1 MB" in r.json()["error"]
        assert list((inst.tmp_dir / "uploads").iterdir()) == []
        assert inst.get("/api/jobs").json()["total"] == 0


def test_token_is_required_when_set_and_jobs_survive_a_restart(tmp_path_factory, small_clip):
    tmp_dir = tmp_path_factory.mktemp("tokened")
    with running_instance(tmp_dir, token="s3cret") as inst:
        assert requests.get(inst.url + "/api/jobs", timeout=10).status_code == 401
        assert requests.get(inst.url + "/api/jobs", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
        with open(small_clip, "rb") as f:
            assert requests.post(inst.url + "/api/upload", files={"file": f}, timeout=30).status_code == 401
        job_id = inst.upload(small_clip, ladder="240p").json()["job_id"]
        assert inst.wait_done(job_id)["status"] == "done"
        url = f"{inst.url}/api/video/{job_id}/240p"
        assert requests.get(url, timeout=10).status_code == 401
        assert requests.get(url + "?token=s3cret", timeout=10).status_code == 200
        hls = f"{inst.url}/api/hls/{job_id}/master.m3u8"
        assert requests.get(hls, timeout=10).status_code == 401  # the stream: the same token
        assert requests.get(hls + "?token=s3cret", timeout=10).status_code == 200
        assert requests.get(inst.url + "/", timeout=10).status_code == 200  # the page itself is public
    with running_instance(tmp_dir, token="s3cret") as again:
        jobs = again.get("/api/jobs").json()["jobs"]
        assert [j["status"] for j in jobs if j["job_id"] == job_id] == ["done"]
        assert again.get(f"/api/video/{job_id}/240p").status_code == 200


def _start(args, timeout=60):
    return subprocess.run([sys.executable, str(REPO / "start_service.py")] + args, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, env={"PATH": "/usr/bin:/bin:" + sys.prefix + "/bin",
                                                           "HOME": "/tmp", "SEGENC_RUNTIME_DIR": "/nonexistent"})


def test_startup_errors_are_one_clear_line(tmp_path):
    r = _start(["--host", "0.0.0.0", "--tmp-dir", str(tmp_path / "a")])
    assert r.returncode == 2 and r.stderr.startswith("error: refusing to serve on 0.0.0.0 without an API token")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _start(["--port", str(port), "--tmp-dir", str(tmp_path / "b")])
        assert r.returncode == 2 and f"port {port}" in r.stderr and "already in use" in r.stderr
        r = _start(["--port", "0", "--redis-port", str(port), "--tmp-dir", str(tmp_path / "c")])
        assert r.returncode == 2 and "already in use" in r.stderr and "--redis-url" in r.stderr
    (tmp_path / "file").write_text("not a dir")
    r = _start(["--tmp-dir", str(tmp_path / "file" / "x")])
    assert r.returncode == 2 and "cannot write to --tmp-dir" in r.stderr
    r = _start(["--worker-name", "w", "--tmp-dir", str(tmp_path / "d")])
    assert r.returncode == 2 and "no main instance found" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------------------------
# Encoding options: accepted and applied, or refused with 400 naming what is allowed
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data,field,allowed", [
    ({"codec": "vp8"}, "codec", "h264"),
    ({"crf": "99"}, "crf", "51"),
    ({"crf": "soft"}, "crf", "51"),
    ({"preset": "turbo"}, "preset", "streaming"),
    ({"gop": "-1"}, "gop", "seconds"),
    ({"ladder": "540x"}, "ladder", "<height>p"),
    ({"ladder": "720p@lots"}, "ladder", "@"),
    ({"audio_bitrate": "3"}, "audio_bitrate", "16k"),
    ({"colour": "blue"}, "colour", "codec"),  # an unknown field, never silently ignored
    ({"codec": "av1", "crf": "64"}, "crf", "63"),
])
def test_upload_refuses_unknown_fields_and_values_with_400(service, small_clip, data, field, allowed):
    before = set((service.tmp_dir / "uploads").iterdir()) if (service.tmp_dir / "uploads").exists() else set()
    r = service.upload(small_clip, **data)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == field and allowed in str(body["allowed"]) + body["error"], body
    after = set((service.tmp_dir / "uploads").iterdir()) if (service.tmp_dir / "uploads").exists() else set()
    assert after == before, "a refused upload left files"


def test_upload_applies_codec_crf_ladder_and_presets(service, small_clip):
    assert {p["name"] for p in service.get("/api/presets").json()["presets"]} == {"web", "streaming", "archive"}
    r = service.upload(small_clip, codec="hevc", crf="30.5", preset="ultrafast", gop="1", ladder="200p@400k",
                       audio_bitrate="96k")
    assert r.status_code == 202, r.text
    job_id = r.json()["job_id"]
    st = service.wait_done(job_id)
    assert st["status"] == "done", st
    assert set(st["renditions"]) == {"200p"}
    path = service.tmp_dir / "encoded" / job_id / "200p.mp4"
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        assert (v.codec_context.name, v.codec_tag, v.codec_context.height) == ("hevc", "hvc1", 200)
        assert c.streams.audio[0].codec_context.bit_rate < 110_000
    assert checks.keyframe_times(path) == [0.0, 1.0, 2.0]
    doc = json.loads((service.tmp_dir / "encoded" / job_id / "manifest.json").read_text())
    assert doc["settings"]["codec"] == "hevc" and doc["settings"]["crf"] == 30.5 and doc["settings"]["gop"] == 1.0
    assert service.get(f"/api/video/{job_id}/200p").status_code == 200


def test_upload_of_hdr_for_h264_is_422_naming_hevc_and_av1(service, tmp_path):
    hdr = make_clip(tmp_path / "hdr.mkv", codec="libx265", pix_fmt="yuv420p10le", colour=HDR10_PQ, seconds=1.0,
                    audio=False)
    r = service.upload(hdr, preset="web")
    assert r.status_code == 422, r.text
    assert "hevc or av1" in r.json()["error"]
