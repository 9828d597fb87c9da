"""The service's view of jobs: uploads in, Celery jobs out, status from Redis.

The tmp dir is the storage root; ``segenc.layout`` says where each file of a job lives.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from segenc import layout
from segenc.distributed import MAIN_QUEUE, JobState, submit
from segenc.distributed.tasks import PREPARE, celery_id, task_ids
from segenc.progress import ProgressEvent
from segenc.stages import TERMINAL, Stage
from segenc.steps import load_plan
from segenc.storage import resolve

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

    def path(self, rel: str) -> Path:
        return resolve(self.root, rel)

    def upload_dir(self, job_id: str) -> Path:
        return self.path(layout.upload_dir(job_id))

    def output(self, job_id: str, quality: str) -> Path:
        return self.path(layout.output(layout.encoded_dir(job_id), quality))

    def start(self, job_id: str, filename: str, info, ladder, settings) -> None:
        """Queue an uploaded job; ``info`` is the upload's probe, handed on so it is not probed again."""
        self.state.create(job_id, filename=filename, source_info=info.summary(), ladder=list(ladder))
        submit(self.celery, job_id, layout.upload(job_id), ladder=ladder, settings=settings, queue=MAIN_QUEUE,
               info=info)
        self.state.publish(ProgressEvent(job_id, "stage", stage=Stage.QUEUED))

    def view(self, job_id: str) -> dict[str, Any] | None:
        snap = self.state.snapshot(job_id)
        if snap is None or snap.get("stage") is None:
            return None
        return self._public(snap)

    def _public(self, snap: dict[str, Any]) -> dict[str, Any]:
        job_id, stage = snap["job_id"], snap["stage"]
        status = Stage.SPLITTING.value if stage == Stage.PROBING else stage
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
                "url": f"/api/video/{job_id}/{name}" if status == Stage.DONE and out else None,
            }
        return {
            "job_id": job_id, "filename": snap.get("filename"), "status": status,
            "progress": round(snap["progress"], 4), "fps": snap.get("fps"), "eta": snap.get("eta"),
            "error": snap.get("error") if status == Stage.FAILED else None,
            "created_at": snap.get("created_at"), "updated_at": snap.get("updated_at"),
            "source": {k: src.get(k) for k in SOURCE_FIELDS} if src else None,
            "renditions": rends, "workers": snap.get("workers", []), "running": snap.get("running", {}),
            "requeued": snap.get("requeues", []),  # tasks given to another worker, and why
            "backups": snap.get("backups", {}),  # stragglers' backup copies: why, on which worker, who won
        }

    def list(self, page: int, limit: int) -> dict[str, Any]:
        ids, total = self.state.jobs((page - 1) * limit, limit)
        jobs = [v for v in (self.view(i) for i in ids) if v is not None]
        return {"jobs": jobs, "total": total, "page": page, "limit": limit}

    def cancel_and_delete(self, job_id: str) -> None:
        """Stop a job (queued chunks revoked, running ones notice and stop) and remove its files."""
        stage = self.state.stage(job_id)
        if stage not in TERMINAL:
            self.state.apply(ProgressEvent(job_id, "stage", stage=Stage.CANCELLED, message="cancelled by the user"))
        self.celery.control.revoke(self._task_ids(job_id))
        for d in layout.job_dirs(job_id):
            shutil.rmtree(self.path(d), ignore_errors=True)
        self.state.tombstone(job_id)  # the 'cancelled' stage stays visible to chunks still running
        self.state.publish(ProgressEvent(job_id, "deleted"))

    def _task_ids(self, job_id: str) -> list[str]:
        """The job's Celery task ids: the ones its plan recorded as sent."""
        try:
            return task_ids(load_plan(self.root, layout.work_dir(job_id)))
        except (OSError, ValueError):
            return [celery_id(job_id, PREPARE)]  # not planned yet: only the prepare task exists

    def workers(self) -> list[dict[str, Any]]:
        now = time.time()
        out = []
        running: dict[str, list[dict[str, str]]] = {}
        ids, _ = self.state.jobs(0, 200)
        for job_id in ids:
            for chunk, worker in self.state.running(job_id).items():
                running.setdefault(worker, []).append({"job_id": job_id, "chunk_id": chunk})
        for name, info in self.state.workers().items():
            beat = float(info.get("last_heartbeat") or 0)
            out.append({"name": name, "node": info.get("node"), "concurrency": int(info.get("concurrency") or 0),
                        "last_heartbeat": beat or None, "online": now - beat < 30,
                        "active": running.get(name, [])})
        return out
