"""Workers without the shared storage: fetch a task's input from the main instance (its own
samples of the source by byte range, see ranges.py, or a segment copy), encode into a local
cache, upload the outputs. Workers that do have it read and write the storage directly."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path

from celery import Celery

from .. import layout
from ..model import ChunkResult, ChunkSpec
from ..stages import TERMINAL
from ..storage import resolve
from . import ranges
from .state import JobState
from .transfer import Transfer


def worker_name(app: Celery) -> str | None:
    """This node's name, from the app's configuration (None: not a named worker)."""
    return app.conf.segenc_worker_name


def remote_root(root: Path, name: str | None) -> Path:
    """This worker's own cache of transferred files (per node, so neighbours never collide)."""
    return resolve(root, layout.remote_root(name or "worker"))


def holds_storage(app: Celery, job_id: str) -> bool:
    """Whether this worker's root is the shared storage of ``job_id`` (its plan is there)."""
    root = app.conf.segenc_root
    return bool(root) and resolve(root, layout.plan_file(layout.work_dir(job_id))).exists()


class Superseded(Exception):
    """Another attempt of this task committed its outputs first: this one wrote nothing in place."""


def encode_here_or_remote(app: Celery, state: JobState, group: list[ChunkSpec], run, report,
                          commit=None) -> list[ChunkResult]:
    """Read the shared storage when this worker has it; otherwise fetch, encode locally, upload.

    The outputs are written under names of this attempt's own (layout.staged) and go into place
    only if ``commit()`` says this attempt won (a backup copy may race it; see backups.py); a
    loser removes them and raises Superseded."""
    root = Path(app.conf.segenc_root)
    name = worker_name(app)
    job_id = group[0].job_id
    web = state.web_url()
    secret = app.conf.segenc_cluster_secret
    if holds_storage(app, job_id) or not web or not secret:  # without a main instance to transfer from: fails naming the file
        return _staged_run(group, root, report, name, run, commit)
    local = remote_root(root, name)
    t = Transfer(web, secret, local)
    # Read from the source by byte range where it is a plain MP4 (ranges.py): only the samples
    # the task reads travel. Else the segment (or audio) copy the main instance writes on request;
    # one serves every rendition in the group.
    if not (group[0].direct and ranges.fetch(t, local, group)):
        group = [_from_copy(s) for s in group]
        t.fetch(group[0].source)
    results = _staged_run(group, local, report, name, run, commit)
    for spec in group:
        t.push(spec.output)
        resolve(local, spec.output).unlink(missing_ok=True)
    state.add_transferred(t.bytes_in + t.bytes_out)
    return results


def _from_copy(spec: ChunkSpec) -> ChunkSpec:
    """A spec that reads the source directly, turned into one reading the segment (or audio)
    copy the main instance writes on request."""
    if not spec.direct:
        return spec
    workdir = layout.work_dir(spec.job_id)
    copy = layout.audio_source(workdir) if spec.kind == "audio" else layout.segment(workdir, spec.segment)
    return dataclasses.replace(spec, source=copy, direct=False)


def _staged_run(group: list[ChunkSpec], root: Path, report, name: str | None, run, commit) -> list[ChunkResult]:
    token = os.urandom(6).hex()
    staged = [dataclasses.replace(s, output=layout.staged(s.output, token)) for s in group]
    try:
        results = run(staged, root, report, name)
        if commit is not None and not commit():
            raise Superseded(f"task {group[0].chunk_id}: another attempt committed first")
        for s, final in zip(staged, group):
            os.replace(resolve(root, s.output), resolve(root, final.output))
    finally:
        for s in staged:
            resolve(root, s.output).unlink(missing_ok=True)
    final_of = {s.chunk_id: s.output for s in group}
    return [dataclasses.replace(r, output=final_of.get(r.chunk_id, r.output)) for r in results]


def sweep_remote(root: Path, name: str | None, state: JobState) -> None:
    """Drop local copies of jobs that have ended (or vanished)."""
    local = remote_root(root, name)
    for job_dir in [*(local / layout.WORK).glob("*"), *(local / layout.UPLOADS).glob("*")]:
        if state.stage(job_dir.name) in (*TERMINAL, None):
            shutil.rmtree(job_dir, ignore_errors=True)
