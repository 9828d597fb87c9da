"""Straggler backups: near a job's end, a slow task gets one copy on an idle worker; the first to
commit wins.

Once every task of a job has started (nothing of it is queued) and worker slots are idle, a
running task whose projected finish lies well after what a fresh copy would take gets one backup:
the same message (same task id, same chord part, so Celery's chord counts whichever finishes
first, once) sent again with ``backup=True`` at the highest priority. Projection: a task that has
encoded a share f of its frames in e seconds needs e (1 - f) / f more; a fresh copy needs its
planned cost times the seconds per cost unit the job's finished tasks took. "Well after" is
BACKUP_FACTOR times the fresh copy's time plus BACKUP_MARGIN. At most BACKUP_SHARE of a job's
tasks (at least one) ever get a backup, and a task at most one.

Both attempts write their outputs under names of their own and race for the task's commit claim
in Redis (JobState.claim_commit): the winner renames its outputs into place and writes the done
marker; the loser deletes what it wrote and stops (the original notices a committed backup at
its next progress event and returns the winner's result). A backup that loses or fails leaves no
trace (it is ignored, never a chord failure): the original still decides the task.

The sweep runs in every worker node's watchdog thread (one node at a time), on any broker. It
publishes a ``chunk_backup`` event (``chunk_id`` = the task, ``message`` = why) and records the
backup and its outcome in ``JobState.backups``.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any

from celery import Celery

from ..progress import ProgressEvent
from ..stages import Stage
from .app import priority
from .state import JobState

BACKUP_FACTOR = 1.5
BACKUP_MARGIN = 1.0  # seconds: dispatch, decoder start
BACKUP_SHARE = 0.10
MIN_PROGRESS = 0.05  # below this share of frames the rate says nothing yet: judge by elapsed time
JOBS_SCANNED = 50  # the newest jobs looked at per sweep


@dataclass(frozen=True)
class Running:
    name: str
    elapsed: float
    progress: float  # share of its frames encoded, 0..1
    cost: float
    worker: str | None = None


def choose(running: list[Running], seconds_per_cost: list[float], idle: int, budget: int) -> list[tuple[str, str]]:
    """Which running tasks get a backup now: (task, why), best gain first. Pure."""
    if idle <= 0 or budget <= 0 or not seconds_per_cost:
        return []
    rate = statistics.median(seconds_per_cost)
    picks = []
    for r in running:
        fresh = r.cost * rate
        limit = BACKUP_FACTOR * fresh + BACKUP_MARGIN
        if r.progress >= MIN_PROGRESS:
            remaining = r.elapsed * (1 - r.progress) / r.progress
        elif r.elapsed > limit:
            remaining = math.inf
        else:
            continue
        if remaining > limit:
            left = "unknown" if math.isinf(remaining) else f"{remaining:.1f} s"
            why = (f"straggler on {r.worker or 'a worker'}: {r.progress:.0%} done after {r.elapsed:.1f} s, "
                   f"{left} left; a fresh copy takes about {fresh:.1f} s")
            picks.append((remaining - fresh, r.name, why))
    picks.sort(key=lambda p: -p[0])
    return [(name, why) for _, name, why in picks[:min(idle, budget)]]


def sweep(app: Celery, state: JobState, now: float | None = None) -> list[dict[str, Any]]:
    """Send the backups the running jobs need now; returns what was sent."""
    now = time.time() if now is None else now
    ids, _ = state.jobs(0, JOBS_SCANNED)
    jobs = [j for j in ids if state.stage(j) == Stage.ENCODING]
    if not jobs:
        return []
    views = {j: _view(state, j, now) for j in jobs}
    busy = sum(len(v["running"]) for v in views.values() if v)
    idle = (state.capacity() or 0) - busy
    sent = []
    for job_id, v in views.items():
        if not v or idle <= 0 or v["queued"] > 0:
            continue  # tasks still waiting: the idle workers get those first
        budget = max(1, int(v["total"] * BACKUP_SHARE)) - len(v["backups"])
        candidates = [r for r in v["running"] if r.name not in v["backups"]]
        for name, why in choose(candidates, v["rates"], idle, budget):
            record, recipe = v["records"][name], state.recipe(job_id, name)
            if recipe is None or not state.add_backup(job_id, name, reason=why, of_worker=record.get("worker")):
                continue
            _send(app, job_id, name, recipe)
            state.apply(ProgressEvent(job_id, "chunk_backup", chunk_id=name, worker=record.get("worker"), message=why))
            sent.append({"job_id": job_id, "task": name, "reason": why})
            idle -= 1
    return sent


def _view(state: JobState, job_id: str, now: float) -> dict[str, Any] | None:
    total = int(state.field(job_id, "tasks_total") or 0)
    if not total:
        return None
    records = state.task_records(job_id)
    done = state.done_tasks(job_id)
    frames = state.chunk_frames(job_id)
    running, rates = [], []
    for name, r in records.items():
        if "started" not in r:
            continue
        if name in done:
            if r.get("finished") and r.get("cost"):
                rates.append((r["finished"] - r["started"]) / r["cost"])
            continue
        planned = r.get("frames") or 0
        got = sum(frames.get(c, 0) for c in r.get("chunks", []))
        running.append(Running(name, now - r["started"], min(1.0, got / planned) if planned else 0.0,
                               float(r.get("cost") or 0), r.get("worker")))
    return {"total": total, "queued": total - len(records), "records": records, "running": running,
            "rates": rates, "backups": state.backups(job_id)}


def _send(app: Celery, job_id: str, name: str, recipe: dict[str, Any]) -> None:
    from .tasks import celery_id

    app.send_task("segenc.encode_chunk", args=recipe["args"], kwargs={"backup": True},
                  task_id=celery_id(job_id, name), group_id=recipe.get("group"),
                  group_index=recipe.get("group_index"), chord=recipe.get("chord"),
                  queue=recipe.get("queue"), priority=priority(app, 0))
