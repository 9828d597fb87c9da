"""The service's view of jobs: uploads in, Celery jobs out, status from Redis.

Storage layout under the tmp dir (the storage root):
    uploads/<job_id>/source     the upload, stored without its client name or extension
    work/<job_id>/              segments, chunks, plan.json (removed when the job ends)
    encoded/<job_id>/<q>.mp4    the renditions and manifest.json
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from segenc.model import task_id
from segenc.pipeline import load_plan
from segenc.progress import ProgressEvent
from segenc.runners.celery import HEARTBEAT_KEY as WORKER_KEY, MAIN_QUEUE, submit
from segenc.runners.redis_state import CHANNEL, TERMINAL, JobState

SOURCE_FIELDS = ("width", "height", "display_width", "display_height", "duration", "fps", "codec", "has_audio",
                 "frames")


def parse_job_id(text: str) -> str | None:
    """The canonical form of a UUID job id, or None: validated before any path is built."""
    try:
        return str(uuid.UUID(text)) if len(text) == 36 else None
    except (ValueError, AttributeError):
        return None


class Jobs:
    def __init__(self, state: JobState, celery, root: Path) -> None:
        self.state = state
        self.celery = celery
        self.root = root

    def upload_dir(self, job_id: str) -> Path:
        return self.root / "uploads" / job_id

    def output(self, job_id: str, quality: str) -> Path:
        return self.root / "encoded" / job_id / f"{quality}.mp4"

    def start(self, job_id: str, filename: str, info, ladder, settings) -> None:
        self.state.create(job_id, filename=filename, source_info=info.summary(), ladder=list(ladder))
        submit(self.celery, job_id, f"uploads/{job_id}/source", ladder=ladder, settings=settings, queue=MAIN_QUEUE)
        self.state.r.publish(CHANNEL, ProgressEvent(job_id, "stage", stage="queued").to_json())

    def view(self, job_id: str) -> dict[str, Any] | None:
        snap = self.state.snapshot(job_id)
        if snap is None or snap.get("stage") is None:
            return None
        return self._public(snap)

    def _public(self, snap: dict[str, Any]) -> dict[str, Any]:
        job_id, stage = snap["job_id"], snap["stage"]
        status = "splitting" if stage == "probing" else stage
        src = snap.get("source_info") or {}
        progress = snap["renditions"]  # per rendition frames, from the planned totals
        planned = {r["name"]: r for r in snap.get("planned") or []}
        outputs = {o["name"]: o for o in snap.get("outputs") or []}
        rends: dict[str, Any] = {}
        for name in progress or planned or snap.get("ladder") or []:
            p, size, out = progress.get(name, {}), planned.get(name) or outputs.get(name) or {}, outputs.get(name, {})
            rends[name] = {
                "progress": p.get("progress", 0.0), "frames_done": p.get("frames_done", 0),
                "frames_total": p.get("frames_total", 0), "width": size.get("width"), "height": size.get("height"),
                "bytes": out.get("bytes"),
                "url": f"/api/video/{job_id}/{name}" if status == "done" and out else None,
            }
        return {
            "job_id": job_id, "filename": snap.get("filename"), "status": status,
            "progress": round(snap["progress"], 4), "fps": snap.get("fps"), "eta": snap.get("eta"),
            "error": snap.get("error") if status == "failed" else None,
            "created_at": snap.get("created_at"), "updated_at": snap.get("updated_at"),
            "source": {k: src.get(k) for k in SOURCE_FIELDS} if src else None,
            "renditions": rends, "workers": snap.get("workers", []), "running": snap.get("running", {}),
        }

    def list(self, page: int, limit: int) -> dict[str, Any]:
        ids, total = self.state.jobs((page - 1) * limit, limit)
        jobs = [v for v in (self.view(i) for i in ids) if v is not None]
        return {"jobs": jobs, "total": total, "page": page, "limit": limit}

    def cancel_and_delete(self, job_id: str) -> None:
        """Stop a job (queued chunks revoked, running ones notice and stop) and remove its files."""
        stage = self.state.stage(job_id)
        if stage not in TERMINAL:
            self.state.apply(ProgressEvent(job_id, "stage", stage="cancelled", message="cancelled by the user"))
        self.celery.control.revoke(self._task_ids(job_id))
        for d in (self.upload_dir(job_id), self.root / "work" / job_id, self.root / "encoded" / job_id):
            shutil.rmtree(d, ignore_errors=True)
        # A tombstone keeps the 'cancelled' stage visible to chunks still running, then expires.
        self.state.r.zrem("segenc:jobs", job_id)
        self.state.r.expire(self.state.key(job_id), 3600)
        self.state.r.publish(CHANNEL, ProgressEvent(job_id, "deleted").to_json())

    def _task_ids(self, job_id: str) -> list[str]:
        ids = [f"{job_id}:prepare", f"{job_id}:finish"]
        try:
            plan = load_plan(self.root, f"work/{job_id}")
        except (OSError, ValueError):
            return ids  # not split yet: only the prepare task exists
        # Every id the job may have used, whichever way its last round was split.
        names = {task_id(t) for t in plan.tasks()} | {c.chunk_id for c in plan.specs()}
        return ids + [f"{job_id}:{n}" for n in sorted(names)]

    def workers(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        running: dict[str, list[dict[str, str]]] = {}
        ids, _ = self.state.jobs(0, 200)
        for job_id in ids:
            for chunk, worker in self.state.r.hgetall(self.state.key(job_id, "running")).items():
                running.setdefault(worker, []).append({"job_id": job_id, "chunk_id": chunk})
        for key in sorted(self.state.r.scan_iter(f"{WORKER_KEY}*")):
            info = self.state.r.hgetall(key)
            name = key[len(WORKER_KEY):]
            beat = float(info.get("last_heartbeat") or 0)
            out.append({"name": name, "node": info.get("node"), "concurrency": int(info.get("concurrency") or 0),
                        "last_heartbeat": beat or None, "online": now - beat < 30,
                        "active": running.get(name, [])})
        return out
