"""Job state in Redis: any process (the service, a CLI elsewhere) can follow any job.

Chunk tasks apply their progress events here (absolute frame counts per chunk, so a lost or
repeated event never double-counts) and publish them on ``segenc:events`` for live followers.

    segenc:job:<id>           hash: stage, error, totals (JSON), created_at, started_at, ... (+ caller fields)
    segenc:job:<id>:frames    hash: chunk_id -> "rendition frames"
    segenc:job:<id>:running   hash: chunk_id -> worker name
    segenc:job:<id>:attempts  hash: chunk_id -> tries started
    segenc:jobs               sorted set: job ids by creation time
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from ..progress import ProgressEvent, summarize

CHANNEL = "segenc:events"
TERMINAL = ("done", "failed", "cancelled")


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)


class JobState:
    def __init__(self, client: redis.Redis) -> None:
        self.r = client

    @staticmethod
    def key(job_id: str, part: str = "") -> str:
        return f"segenc:job:{job_id}" + (f":{part}" if part else "")

    def create(self, job_id: str, **fields: Any) -> None:
        now = time.time()
        data = {"stage": "queued", "created_at": now, "updated_at": now}
        data.update({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items() if v is not None})
        pipe = self.r.pipeline()
        pipe.hset(self.key(job_id), mapping=data)
        pipe.zadd("segenc:jobs", {job_id: now})
        pipe.execute()

    def exists(self, job_id: str) -> bool:
        return bool(self.r.exists(self.key(job_id)))

    def set(self, job_id: str, **fields: Any) -> None:
        data = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items() if v is not None}
        data["updated_at"] = time.time()
        self.r.hset(self.key(job_id), mapping=data)

    def stage(self, job_id: str) -> str | None:
        return self.r.hget(self.key(job_id), "stage")

    def apply(self, ev: ProgressEvent) -> None:
        """Record an event and publish it. Terminal stages are sticky: nothing overwrites them."""
        k = self.key(ev.job_id)
        pipe = self.r.pipeline()
        if ev.kind == "stage" and ev.stage:
            if self.stage(ev.job_id) in TERMINAL and ev.stage != "cancelled":
                return
            fields: dict[str, Any] = {"stage": ev.stage, "updated_at": ev.time}
            if ev.stage == "encoding":
                fields["started_at"] = ev.time
            if ev.message:
                fields["error"] = ev.message
            if ev.stage in TERMINAL:
                pipe.delete(self.key(ev.job_id, "running"))
            pipe.hset(k, mapping=fields)
        elif ev.kind == "planned" and ev.totals:
            pipe.hset(k, "totals", json.dumps(ev.totals))
        elif ev.chunk_id:
            if ev.rendition and ev.kind in ("chunk_started", "frames", "chunk_done"):
                pipe.hset(self.key(ev.job_id, "frames"), ev.chunk_id, f"{ev.rendition} {ev.frames}")
            if ev.kind == "chunk_started" and ev.worker:
                pipe.hset(self.key(ev.job_id, "running"), ev.chunk_id, ev.worker)
            elif ev.kind in ("chunk_done", "chunk_failed"):
                pipe.hdel(self.key(ev.job_id, "running"), ev.chunk_id)
        pipe.publish(CHANNEL, ev.to_json())
        pipe.execute()

    def attempt(self, job_id: str, chunk_id: str) -> int:
        """Count one more start of this chunk; returns the count (1 on the first try)."""
        return int(self.r.hincrby(self.key(job_id, "attempts"), chunk_id, 1))

    def snapshot(self, job_id: str) -> dict[str, Any] | None:
        pipe = self.r.pipeline()
        pipe.hgetall(self.key(job_id))
        pipe.hgetall(self.key(job_id, "frames"))
        pipe.hgetall(self.key(job_id, "running"))
        job, frames, running = pipe.execute()
        if not job:
            return None
        stage = job.get("stage", "queued")
        totals = json.loads(job.get("totals") or "{}")
        chunk_frames = {}
        for c, v in frames.items():
            rend, _, n = v.partition(" ")
            chunk_frames[c] = (rend, int(n or 0))
        fps = None
        started = float(job.get("started_at") or 0)
        if started and stage == "encoding":
            elapsed = time.time() - started
            done = sum(n for _, n in chunk_frames.values())
            fps = done / elapsed if elapsed > 0.5 and done else None
        snap = summarize(stage, totals, chunk_frames, running, fps, job.get("error"))
        for key, value in job.items():
            if key not in snap and key not in ("totals",):
                snap[key] = _maybe_json(value)
        snap["job_id"] = job_id
        return snap

    def jobs(self, offset: int = 0, limit: int = 50) -> tuple[list[str], int]:
        ids = self.r.zrevrange("segenc:jobs", offset, offset + limit - 1)
        return ids, int(self.r.zcard("segenc:jobs"))

    def delete(self, job_id: str) -> None:
        pipe = self.r.pipeline()
        for part in ("", "frames", "running", "attempts"):
            pipe.delete(self.key(job_id, part))
        pipe.zrem("segenc:jobs", job_id)
        pipe.execute()


def _maybe_json(v: str) -> Any:
    if v and v[0] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    try:
        return float(v) if "." in v or v.isdigit() else v
    except ValueError:
        return v
