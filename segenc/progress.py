"""Progress events and the tracker that folds them into a job snapshot.

Chunk tasks emit ``ProgressEvent``s (a few per second); whoever follows a job (the CLI bar, the
web service, a callback) feeds them to a ``Tracker`` and reads ``snapshot()``.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .model import Plan, _Json
from .stages import Stage



@dataclass(frozen=True)
class ProgressEvent(_Json):
    """kind: ``stage`` | ``planned`` | ``chunk_started`` | ``frames`` | ``chunk_done`` | ``chunk_failed``
    | ``chunk_requeued`` (its worker was lost; ``chunk_id`` is the task, ``message`` says why).

    ``planned`` carries ``totals``: frames to encode per rendition. ``frames`` counts are absolute
    within a chunk, so a lost or repeated event never double-counts.
    """

    job_id: str
    kind: str
    stage: str | None = None
    chunk_id: str | None = None
    rendition: str | None = None
    frames: int = 0
    worker: str | None = None
    message: str | None = None
    totals: dict[str, int] | None = None
    time: float = field(default_factory=time.time)


Reporter = Callable[[ProgressEvent], None]


def null_reporter(event: ProgressEvent) -> None:
    pass


def local_worker() -> str:
    """Who runs a chunk when the caller names no worker: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Throttle:
    """Let a frame-count report through at most every ``interval`` seconds."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self._next = 0.0

    def ready(self) -> bool:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            return True
        return False


def plan_totals(plan: Plan) -> dict[str, int]:
    totals = {r.name: 0 for r in plan.renditions}
    for c in plan.chunks:
        totals[c.rendition.name] += c.frames
    return totals


class Tracker:
    """Folds events into per-rendition progress, fps and ETA for one job."""

    def __init__(self, plan: Plan | None = None, job_id: str | None = None) -> None:
        self.job_id = plan.job_id if plan else job_id
        self.stage: str = Stage.QUEUED
        self.error: str | None = None
        self.totals: dict[str, int] = {}
        self.chunk_frames: dict[str, int] = {}
        self.chunk_rendition: dict[str, str] = {}
        self.running: dict[str, str] = {}  # chunk_id -> worker
        self.started_at: float | None = None
        self._rate: list[tuple[float, int]] = []
        if plan:
            self.set_plan(plan)

    def set_plan(self, plan: Plan) -> None:
        self.totals = plan_totals(plan)

    def update(self, ev: ProgressEvent) -> None:
        if ev.kind == "planned" and ev.totals:
            self.totals = dict(ev.totals)
        elif ev.kind == "stage" and ev.stage:
            self.stage = ev.stage
            if ev.stage == Stage.FAILED:
                self.error = ev.message
            if ev.stage == Stage.ENCODING and self.started_at is None:
                self.started_at = ev.time
        elif ev.chunk_id and ev.rendition:
            self.chunk_rendition[ev.chunk_id] = ev.rendition
            if ev.kind in ("frames", "chunk_done"):
                self.chunk_frames[ev.chunk_id] = max(self.chunk_frames.get(ev.chunk_id, 0), ev.frames)
            if ev.kind == "chunk_started" and ev.worker:
                self.running[ev.chunk_id] = ev.worker
                self.chunk_frames[ev.chunk_id] = 0  # a re-run starts over
            elif ev.kind in ("chunk_done", "chunk_failed"):
                self.running.pop(ev.chunk_id, None)
        elif ev.chunk_id and ev.kind == "chunk_requeued":
            for c in [c for c in self.running if c == ev.chunk_id or c.startswith(ev.chunk_id + "-")]:
                self.running.pop(c)
        elif ev.chunk_id and ev.kind == "chunk_started" and ev.worker:
            self.running[ev.chunk_id] = ev.worker
        elif ev.chunk_id and ev.kind in ("chunk_done", "chunk_failed"):
            self.running.pop(ev.chunk_id, None)
        self._rate.append((ev.time, self.frames_done))
        self._rate = [(t, n) for t, n in self._rate if ev.time - t <= 5.0]

    @property
    def frames_done(self) -> int:
        return sum(self.chunk_frames.values())

    def snapshot(self) -> dict[str, Any]:
        fps = None
        if len(self._rate) >= 2 and self._rate[-1][0] > self._rate[0][0]:
            fps = (self._rate[-1][1] - self._rate[0][1]) / (self._rate[-1][0] - self._rate[0][0])
        frames = {c: (self.chunk_rendition[c], n) for c, n in self.chunk_frames.items()}
        return summarize(self.stage, self.totals, frames, self.running, fps, self.error)


def summarize(stage: str, totals: dict[str, int], chunk_frames: dict[str, tuple[str, int]],
              running: dict[str, str], fps: float | None, error: str | None = None) -> dict[str, Any]:
    """The job snapshot every follower shows: per-rendition frames, overall progress, fps, ETA."""
    per: dict[str, dict[str, Any]] = {}
    for name, total in totals.items():
        done = min(total, sum(n for r, n in chunk_frames.values() if r == name))
        per[name] = {"frames_done": done, "frames_total": total,
                     "progress": 1.0 if stage == Stage.DONE else (done / total if total else 0.0)}
    total = sum(totals.values())
    done = sum(r["frames_done"] for r in per.values())
    # Encoding is ~97% of the work; concat and packaging take the last few percent.
    progress = 1.0 if stage == Stage.DONE else (0.97 * done / total if total else 0.0)
    eta = (total - done) / fps if fps and fps > 0 and stage == Stage.ENCODING else None
    return {
        "stage": stage, "progress": progress, "frames_done": done, "frames_total": total,
        "fps": fps, "eta": eta, "renditions": per, "error": error,
        "workers": sorted(set(running.values())), "running": dict(running),
    }
