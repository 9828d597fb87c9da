"""The service's view of jobs: uploads in, Celery jobs out, status from Redis.

The tmp dir is the storage root; ``segenc.layout`` says where each file of a job lives.
"""

from __future__ import annotations

import logging
import os
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
from segenc.errors import SegencError
from segenc.steps import load_plan
from segenc.storage import resolve
from segenc.stream import publish, published
from segenc.thumbnail import write_thumbnail

log = logging.getLogger(__name__)

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

    def stream_path(self, job_id: str, rel: str) -> Path:
        """A file of the job's stream (``rel`` checked by ``layout.stream_file`` first)."""
        return self.path(f"{layout.encoded_dir(job_id)}/{rel}")

    def publish(self, job_id: str) -> None:
        """Put what the workers have finished on the job's stream now (idempotent; ``publish``
        locks per job, and does nothing once the job's work dir is gone or the stream is final).
        A fault it finds (a chunk whose init differs) is the job's: its finish step reports it."""
        try:
            plan = load_plan(self.root, layout.work_dir(job_id))
        except (OSError, ValueError):
            return  # not planned yet, or finished
        try:
            publish(plan, self.root, self.path(layout.encoded_dir(job_id)))
        except (SegencError, OSError):
            pass

    def stream_view(self, job_id: str) -> dict[str, Any]:
        """The stream's URLs, whether the master is there, and the segments published per track."""
        out = self.path(layout.encoded_dir(job_id))
        tracks = sorted(p.name for p in out.iterdir() if p.is_dir()) if out.is_dir() else []
        return {"hls": f"/api/hls/{job_id}/{layout.MASTER_PLAYLIST}", "dash": f"/api/dash/{job_id}/{layout.DASH_MANIFEST}",
                "ready": (out / layout.MASTER_PLAYLIST).is_file(), "final": (out / layout.DASH_MANIFEST).is_file(),
                "segments": {t: published(out, t) for t in tracks}}

    def start(self, job_id: str, filename: str, info, ladder, settings, options: dict | None = None) -> None:
        """Queue an uploaded job; ``info`` is the upload's probe, handed on so it is not probed again.
        ``options`` are the fields the user gave (kept, so a failed job can be retried alike).
        Jobs get a lead segment one keyframe interval long (``Settings.lead_seconds``): people watch
        them while they encode, and the stream starts once every rung's first segment exists."""
        settings = settings if settings.lead_seconds else settings.with_(lead_seconds=settings.gop)
        self._thumbnail(job_id, info)
        self.state.create(job_id, filename=filename, source_info=info.summary(), ladder=list(ladder),
                          options=dict(options or {}))
        submit(self.celery, job_id, layout.upload(job_id), ladder=ladder, settings=settings, queue=MAIN_QUEUE,
               info=info)
        self.state.publish(ProgressEvent(job_id, "stage", stage=Stage.QUEUED))

    def _thumbnail(self, job_id: str, info) -> None:
        try:
            write_thumbnail(self.path(layout.upload(job_id)), self.path(layout.thumbnail(job_id)), info)
        except Exception as exc:  # noqa: BLE001 - cosmetic: the job goes ahead without one
            log.warning("job %s: no thumbnail (%s)", job_id, exc)

    def thumbnail(self, job_id: str) -> Path:
        return self.path(layout.thumbnail(job_id))

    def retry(self, job_id: str, new_id: str) -> str | None:
        """A failed job again, as a new job from the same upload and options; the failed one is
        deleted. Returns None if it cannot be retried (not failed, or its upload is gone)."""
        snap = self.state.snapshot(job_id)
        source = self.path(layout.upload(job_id))
        if not snap or snap.get("stage") != Stage.FAILED or not source.is_file():
            return None
        from segenc.presets import job_options
        from segenc.probe import probe

        options = snap.get("options") if isinstance(snap.get("options"), dict) else {}
        settings, ladder = job_options(options)
        target = self.path(layout.upload(new_id))
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.link(source, target)  # the same bytes, no copy; the old job's folder goes below
        info = probe(target, settings.limits)
        self.start(new_id, snap.get("filename") or "untitled", info, ladder, settings, options)
        self.cancel_and_delete(job_id)
        return new_id

    def view(self, job_id: str, refresh: bool = False) -> dict[str, Any] | None:
        """The job's public status; ``refresh``: publish its finished chunks first if it runs."""
        snap = self.state.snapshot(job_id)
        if snap is None or snap.get("stage") is None:
            return None
        if refresh and snap["stage"] not in TERMINAL:
            self.publish(job_id)
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
        asked = [str(q).split("@")[0] for q in snap.get("ladder") or []]
        known = set(progress or {}) | set(planned)
        skipped = [q for q in asked if known and q not in known]
        return {
            "job_id": job_id, "filename": snap.get("filename"), "status": status,
            "skipped": skipped,  # rungs above the source's height: not encoded
            "source_height": (src.get("display_height") or src.get("height")) if src else None,
            "thumbnail": f"/api/thumbnail/{job_id}" if self.thumbnail(job_id).is_file() else None,
            "progress": round(snap["progress"], 4), "fps": snap.get("fps"), "eta": snap.get("eta"),
            "error": snap.get("error") if status == Stage.FAILED else None,
            "created_at": snap.get("created_at"), "updated_at": snap.get("updated_at"),
            "source": {k: src.get(k) for k in SOURCE_FIELDS} if src else None,
            "renditions": rends, "workers": snap.get("workers", []), "running": snap.get("running", {}),
            "requeued": snap.get("requeues", []),  # tasks given to another worker, and why
            "stream": self.stream_view(job_id) if stage not in (Stage.FAILED, Stage.CANCELLED) else None,
            "backups": snap.get("backups", {}),  # stragglers' backup copies: why, on which worker, who won
            "resent": snap.get("resent") or [],  # what a Redis outage lost and the watchdog sent again
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
