"""``/metrics`` read as Prometheus reads it: parsed by prometheus_client's text-format parser (an
implementation independent of ours, which rejects malformed lines), after a real encode."""

from __future__ import annotations

import time

import pytest

pytestmark = [pytest.mark.service, pytest.mark.timeout(300)]

parser = pytest.importorskip("prometheus_client.parser")


def scrape(service) -> dict[str, dict[tuple, float]]:
    r = service.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: dict[str, dict[tuple, float]] = {}
    for fam in parser.text_string_to_metric_families(r.text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_metrics_count_a_finished_job(service, small_clip):
    before = scrape(service)
    r = service.upload(small_clip, ladder="240p", chunk_seconds="1")
    assert r.status_code == 202, r.text
    st = service.wait_done(r.json()["job_id"])
    assert st["status"] == "done", st
    video = service.get(st["renditions"]["240p"]["url"])
    assert video.status_code == 200
    part = service.get(st["renditions"]["240p"]["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    after = scrape(service)

    def delta(name: str, **labels: str) -> float:
        key = tuple(sorted(labels.items()))
        return after[name][key] - before.get(name, {}).get(key, 0.0)

    assert after["segenc_jobs"][(("status", "done"),)] >= 1
    assert set(k[0][1] for k in after["segenc_jobs"]) >= {"queued", "encoding", "done", "failed", "cancelled"}
    assert delta("segenc_chunks_total", outcome="done") >= 4  # 3 s at 1 s segments + the audio task
    assert delta("segenc_chunks_total", outcome="failed") == 0
    assert delta("segenc_encode_seconds_total") > 0
    assert delta("segenc_served_bytes_total") == len(video.content) + 100
    assert after["segenc_workers_online"][()] >= 1 and after["segenc_worker_processes"][()] >= 1
    assert {k[0][1] for k in after["segenc_queue_depth"]} == {"celery", "segenc.main"}
    assert all(v >= 0 for v in after["segenc_queue_depth"].values())
    assert "segenc_transferred_bytes_total" in after


def test_access_log_has_requests_but_no_query_strings(service):
    assert service.get("/metrics?token=s3cret-in-the-url").status_code == 200
    deadline = time.monotonic() + 5
    while '"GET /metrics HTTP/1.1" 200' not in service.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "no access log line for /metrics"
        time.sleep(0.1)
    assert "s3cret-in-the-url" not in service.log.read_text(errors="replace")
