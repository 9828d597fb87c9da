"""Retention: what the main instance removes on its own, so the storage does not grow forever.

Every sweep (at start, then every ``SWEEP_SECONDS``), for each job in a terminal stage:

- ``failed`` or ``cancelled``: its work files and any partial output go (``layout.failed_job_dirs``);
  the upload stays, so the job can be retried.
- ``done`` with ``delete_sources``: its upload goes (the renditions stay).
- any terminal job last changed more than ``retain_days`` days ago (0: never): the whole job goes,
  files and record, as a DELETE would.

Jobs still queued or running are never touched, nor anything that is not a job's folder.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from segenc import layout
from segenc.progress import ProgressEvent
from segenc.stages import Stage
from segenc.storage import resolve

SWEEP_SECONDS = 60.0
DAY = 86400.0


@dataclass(frozen=True)
class Policy:
    delete_sources: bool = False  # after success
    retain_days: float = 0.0  # 0: keep finished jobs until deleted by hand


def sweep(state, root: Path, policy: Policy, now: float | None = None) -> dict[str, list[str]]:
    """One pass over the jobs; returns what it removed: {"expired": [job ids], "sources": [...],
    "work": [...]} (folders that were actually there)."""
    now = time.time() if now is None else now
    removed: dict[str, list[str]] = {"expired": [], "sources": [], "work": []}
    for job_id, stage, updated in state.finished_jobs():
        if policy.retain_days > 0 and now - updated > policy.retain_days * DAY:
            for rel in layout.job_dirs(job_id):
                _rmtree(resolve(root, rel))
            state.delete(job_id)
            state.publish(ProgressEvent(job_id, "deleted"))
            removed["expired"].append(job_id)
            continue
        if stage in (Stage.FAILED, Stage.CANCELLED) and \
                any([_rmtree(resolve(root, rel)) for rel in layout.failed_job_dirs(job_id)]):
            removed["work"].append(job_id)
        if stage == Stage.DONE and policy.delete_sources and _rmtree(resolve(root, layout.upload_dir(job_id))):
            removed["sources"].append(job_id)
    return removed


def _rmtree(path: Path) -> bool:
    if not path.exists():
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True
