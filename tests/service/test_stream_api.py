"""The stream routes against a real main instance: /api/hls/<job>/... and /api/dash/<job>/...
serve the job's CMAF stream while it encodes and after, with the right types and Range."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests import checks

pytestmark = [pytest.mark.service, pytest.mark.timeout(300)]


def test_stream_routes_serve_the_job_while_and_after_it_encodes(service, small_clip, tmp_path):
    job_id = service.upload(small_clip, ladder="240p,360p").json()["job_id"]
    base = f"/api/hls/{job_id}"
    early = None  # the first master we saw, and the job's status then
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = service.get(f"{base}/master.m3u8")
        st = service.get(f"/api/status/{job_id}").json()
        if r.status_code == 200 and early is None:
            early = st
        if st["status"] in ("done", "failed"):
            break
        assert r.status_code in (200, 404), r.text  # not published yet: 404 with a reason, never a 5xx
        time.sleep(0.1)
    assert st["status"] == "done", st
    assert early is not None, "the master playlist never appeared"
    s = st["stream"]
    assert (s["hls"], s["dash"]) == (f"{base}/master.m3u8", f"/api/dash/{job_id}/stream.mpd")
    assert s["ready"] and s["final"]
    n = json.loads((service.tmp_dir / "encoded" / job_id / "manifest.json").read_text())["segments"]
    assert s["segments"] == {"240p": n, "360p": n, "audio0": n} and early["stream"]["ready"]
    master = service.get(s["hls"])
    assert master.headers["Content-Type"].startswith("application/vnd.apple.mpegurl")
    assert master.headers["Cache-Control"] == "no-cache"
    assert master.text == (service.tmp_dir / "encoded" / job_id / "master.m3u8").read_text()
    variant = service.get(f"{base}/360p/index.m3u8")
    assert "#EXT-X-ENDLIST" in variant.text and variant.headers["Cache-Control"] == "no-cache"
    on_disk = (service.tmp_dir / "encoded" / job_id / "360p" / "s0000.m4s").read_bytes()
    seg = service.get(f"{base}/360p/s0000.m4s", headers={"Range": "bytes=0-99"})
    assert seg.status_code == 206 and seg.headers["Content-Type"] == "video/iso.segment"
    assert seg.content == on_disk[:100]
    init = service.get(f"/api/dash/{job_id}/360p/init.mp4")
    assert init.status_code == 200 and init.headers["Content-Type"] == "video/iso.segment"
    mpd = service.get(s["dash"])
    assert mpd.status_code == 200 and mpd.headers["Content-Type"].startswith("application/dash+xml")
    # with ?token= every URI the player will ask for carries it on
    tokened = service.get(f"{base}/360p/index.m3u8?token=abc").text
    assert 'URI="init.mp4?token=abc"' in tokened and "s0000.m4s?token=abc" in tokened
    # what the routes refuse
    for bad in (f"{base}/../manifest.json", f"{base}/360p/../../manifest.json", f"{base}/manifest.json",
                f"{base}/360p/s0099.m4s", f"{base}/360p%2F..%2F..%2Fmanifest.json", "/api/hls/not-a-job/master.m3u8"):
        r = requests.get(service.url + bad, timeout=10)
        assert r.status_code in (400, 404), (bad, r.status_code)
    # ffmpeg reads the served master over HTTP with every frame
    frames = checks.frame_count(small_clip)
    got = checks.stream_packets_url(service.url + s["hls"])
    assert sorted(len(v) for k, v in got.items() if k.startswith("video")) == [frames, frames]
