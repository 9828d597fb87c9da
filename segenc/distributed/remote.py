"""Workers without the shared storage: fetch a task's input from the main instance, encode into a
local cache, upload the outputs. Workers that do have it read and write the storage directly."""

from __future__ import annotations

import shutil
from pathlib import Path

from celery import Celery

from .. import layout
from ..model import ChunkResult, ChunkSpec
from ..stages import TERMINAL
from ..storage import resolve
from .state import JobState
from .transfer import Transfer


def worker_name(app: Celery) -> str | None:
    """This node's name, from the app's configuration (None: not a named worker)."""
    return app.conf.segenc_worker_name


def remote_root(root: Path, name: str | None) -> Path:
    """This worker's own cache of transferred files (per node, so neighbours never collide)."""
    return resolve(root, layout.remote_root(name or "worker"))


def encode_here_or_remote(app: Celery, state: JobState, group: list[ChunkSpec], run, report) -> list[ChunkResult]:
    """Read the shared storage when this worker has it; otherwise fetch, encode locally, upload."""
    root = Path(app.conf.segenc_root)
    name = worker_name(app)
    job_id = group[0].job_id
    if resolve(root, layout.plan_file(layout.work_dir(job_id))).exists():
        return run(group, root, report, name)
    web = state.web_url()
    secret = app.conf.segenc_cluster_secret
    if not web or not secret:
        return run(group, root, report, name)  # no main instance to transfer from: fails naming the file
    local = remote_root(root, name)
    t = Transfer(web, secret, local)
    t.fetch(group[0].source)  # one segment (or the audio track) serves every rendition in the group
    results = run(group, local, report, name)
    for spec in group:
        t.push(spec.output)
        resolve(local, spec.output).unlink(missing_ok=True)
    state.add_transferred(t.bytes_in + t.bytes_out)
    return results


def sweep_remote(root: Path, name: str | None, state: JobState) -> None:
    """Drop local copies of jobs that have ended (or vanished)."""
    for job_dir in (remote_root(root, name) / layout.WORK).glob("*"):
        if state.stage(job_dir.name) in (*TERMINAL, None):
            shutil.rmtree(job_dir, ignore_errors=True)
