"""``GET /metrics``: the cluster in Prometheus' text exposition format (version 0.0.4).

Counters live in Redis (``JobState.counters``), so they are the cluster's, whichever gunicorn
worker answers, and survive a restart of the service (they restart with Redis' data). Gauges are
read at scrape time. Behind the API token when the service has one (``Authorization: Bearer``).
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app

from segenc.distributed import MAIN_QUEUE
from segenc.distributed.app import DEFAULT_QUEUE
from segenc.stages import Stage

from .auth import token_ok

metrics = Blueprint("metrics", __name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@metrics.get("/metrics")
def exposition():
    if not token_ok(current_app):
        return Response("missing or wrong API token\n", 401, mimetype="text/plain")
    jobs = current_app.extensions["segenc_jobs"]
    return Response(render(jobs), mimetype=None, content_type=CONTENT_TYPE)


def render(jobs) -> str:
    state = jobs.state
    counters = state.counters()
    stages = state.stage_counts()
    workers = jobs.workers()
    online = [w for w in workers if w["online"]]
    out: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            out.append(f"{name}{labels} {_number(value)}")

    family("segenc_jobs", "gauge", "Jobs by status.",
           [(f'{{status="{s.value}"}}', stages.get(s.value, 0)) for s in Stage])
    family("segenc_chunks_total", "counter", "Chunk tasks finished, by outcome (requeued: given to another worker).",
           [('{outcome="done"}', counters["chunks_done"]), ('{outcome="failed"}', counters["chunks_failed"]),
            ('{outcome="requeued"}', counters["chunks_requeued"])])
    family("segenc_encode_seconds_total", "counter", "Seconds spent encoding chunks, summed over every worker.",
           [("", counters["encode_seconds"])])
    family("segenc_queue_depth", "gauge", "Tasks waiting in each Celery queue.",
           [(f'{{queue="{q}"}}', n) for q, n in state.queue_depths((DEFAULT_QUEUE, MAIN_QUEUE)).items()])
    family("segenc_workers_online", "gauge", "Worker nodes with a heartbeat in the last 30 s.", [("", len(online))])
    family("segenc_worker_processes", "gauge", "Encoder processes on the online worker nodes.",
           [("", sum(w["concurrency"] for w in online))])
    family("segenc_served_bytes_total", "counter", "Bytes of encoded video sent by /api/video (response sizes).",
           [("", counters["bytes_served"])])
    family("segenc_transferred_bytes_total", "counter", "Bytes of chunk files moved to and from remote workers.",
           [("", state.transferred())])
    return "\n".join(out) + "\n"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
