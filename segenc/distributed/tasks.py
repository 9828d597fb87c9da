"""The Celery tasks: thin adapters that decode JSON, call a step, and encode the result.

    run_job (prepare on a worker)  ->  chord([encode_chunk x Plan.tasks], finish)

Paths in task messages are relative to the storage root; every worker resolves them against its
own root (its ``--tmp-dir``), and refuses any path that lands outside it. ``shared_task`` binds
the tasks to every app (``self.app`` is the worker's).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from celery import Celery, chord, shared_task, signature
from celery.exceptions import ChordError, Ignore

from .. import layout
from ..errors import InputError, IntegrityError, JobCancelled, JobFailed, SegencError, storage_full
from ..model import ChunkResult, ChunkSpec, MediaInfo, Plan, task_cost, task_id
from ..progress import ProgressEvent, Reporter
from ..settings import Settings
from ..stages import STOPPED, TERMINAL, Stage
# Imported here, not in the tasks: a worker loads PyAV and the pipeline once, before forking
# its pool, instead of in each pool process's first task (~100 ms of dispatch latency).
from ..steps import encode_chunks, finish, load_plan, prepare
from ..storage import resolve
from .app import priority, state_url_of
from .lease import Lease
from .remote import Superseded, encode_here_or_remote, holds_storage, worker_name
from .state import UNAVAILABLE, JobState, until_up

PREPARE, FINISH = "prepare", "finish"
BACKUP = "~backup"  # a backup's lease: task id + this (the original keeps the task's own)


def celery_id(job_id: str, name: str) -> str:
    """The Celery task id of a job's task ``name`` (a Plan task id, PREPARE or FINISH)."""
    return f"{job_id}:{name}"


def task_ids(plan: Plan) -> list[str]:
    """Every Celery task id the job uses: exactly what was planned and sent."""
    return [celery_id(plan.job_id, n) for n in (PREPARE, *(t.id for t in plan.tasks), FINISH)]


@shared_task(bind=True, name="segenc.run_job")
def run_job(self, job_id: str, source: str, ladder: list[str], settings: dict, out: str,
            info: dict | None = None) -> str:
    """Probe (unless the caller sends the probe), plan and split on a worker, then launch the
    chord. Returns the chord body's id. Its Redis calls wait out a restart, as the chunks' do."""
    root, state = _root(self.app), state_of(self.app)
    stage = until_up(state.stage, job_id)
    if stage in TERMINAL or stage is None:
        return ""
    lease = Lease(state, job_id, PREPARE, worker_name(self.app))
    if not until_up(lease.wait_turn, self.app.conf.task_time_limit):
        return until_up(state.done, job_id, PREPARE)  # a copy of this task finished meanwhile
    with lease:
        return _run_job(self, state, root, lease, job_id, source, ladder, settings, out, info)


def _run_job(self, state: JobState, root: Path, lease: Lease, job_id: str, source: str, ladder: list[str],
             settings: dict, out: str, info: dict | None) -> str:
    if (done := until_up(state.done, job_id, PREPARE)) is not None:
        return done
    try:
        plan = prepare(resolve(root, source), root, job_id=job_id, ladder=tuple(ladder),
                       settings=Settings.from_dict(settings), workdir=layout.work_dir(job_id),
                       report=_reporter(state, job_id), workers=until_up(state.capacity),
                       info=MediaInfo.from_dict(info) if info else None)
    except (SegencError, OSError) as exc:
        until_up(state.apply, ProgressEvent(job_id, "stage", stage=Stage.FAILED, message=str(storage_full(exc) or exc)))
        _remove_job_files(root, job_id, everything=storage_full(exc) is not None)
        raise
    if until_up(state.stage, job_id) in TERMINAL:  # cancelled while splitting
        return ""
    if info is None:  # the caller had no probe: this one is the job's
        until_up(state.set, job_id, source_info=plan.info.summary())
    until_up(state.set, job_id, planned=[r.to_dict() for r in plan.renditions])
    until_up(state.apply, ProgressEvent(job_id, "stage", stage=Stage.ENCODING))
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    until_up(state.set, job_id, tasks_total=len(plan.tasks))
    result = dispatch(self.app, state, plan, out, finish_queue=queue)
    until_up(state.set, job_id, result_id=result.id)
    until_up(state.mark_done, job_id, PREPARE, result.id)
    return result.id


@shared_task(bind=True, name="segenc.encode_chunk")
def encode_chunk_task(self, specs: list[dict], backup: bool = False) -> list[dict]:
    """A segment's renditions (decoded once) or the audio track; see Plan.tasks. ``backup``: a
    copy sent for a straggler (see backups.py), racing the original to commit."""
    group = [ChunkSpec.from_dict(s) for s in specs]
    job_id, name = group[0].job_id, task_id(group)
    state = state_of(self.app)
    if backup:
        return _run_backup(self, state, group, job_id, name)
    # A copy with nothing to do (the chunk is done, or the job ended) counts no attempt.
    skip = until_up(_skip, state, job_id, name)
    if skip is not None:
        return skip
    lease = Lease(state, job_id, name, worker_name(self.app))
    if not until_up(lease.wait_turn, self.app.conf.task_time_limit):
        return state.done(job_id, name)
    with lease:
        skip = until_up(_skip, state, job_id, name)  # done between the first look and the lease
        if skip is not None:
            return skip
        until_up(_note_start, self, state, group, specs, job_id, name)
        try:
            results = _encode_chunk(self, state, group, job_id, name, lease)
        except Superseded:  # a backup committed first: its result is this task's (counted once by task id)
            until_up(state.note_backup, job_id, name, original="superseded: wrote nothing in place")
            return until_up(state.done, job_id, name)
        until_up(state.mark_done, job_id, name, results)  # before the lease goes: no gap for the watchdog
        until_up(state.note_task, job_id, name, finished=time.time())
    return results


def _note_start(self, state: JobState, group: list[ChunkSpec], specs: list[dict], job_id: str, name: str) -> None:
    """Record what a backup of this task would need: when it started, its size, and its message."""
    info = self.request.delivery_info or {}
    recipe = {"args": [specs], "group": self.request.group, "group_index": self.request.group_index,
              "chord": self.request.chord, "queue": info.get("routing_key") or None}
    state.note_recipe(job_id, name, recipe)
    state.note_task(job_id, name, started=time.time(), worker=worker_name(self.app), cost=task_cost(group),
                    frames=sum(c.frames for c in group), chunks=[c.chunk_id for c in group])


def _run_backup(self, state: JobState, group: list[ChunkSpec], job_id: str, name: str) -> list[dict]:
    """A straggler's backup: encode, and commit only if the original has not. Whatever happens to
    it (it loses, the job ends, the encode fails) it leaves no trace: the original still runs."""
    me = worker_name(self.app)
    lease = Lease(state, job_id, name + BACKUP, me)
    if until_up(_skip_backup, state, job_id, name) or not lease.try_acquire():
        raise Ignore()
    with lease:
        state.note_backup(job_id, name, started=time.time(), worker=me)
        try:
            results = encode_here_or_remote(self.app, state, group, encode_chunks, _reporter(state, job_id, name),
                                            commit=lambda: state.claim_commit(job_id, name, name + BACKUP, lease.token))
        except Exception as exc:  # noqa: BLE001 - a backup never fails the job: the original decides
            until_up(state.note_backup, job_id, name, outcome=f"lost ({type(exc).__name__}: {exc})")
            raise Ignore() from None
        out = [r.to_dict() for r in results]
        until_up(state.mark_done, job_id, name, out)
        until_up(state.note_backup, job_id, name, outcome="won", winner=me, finished=time.time())
        until_up(state.note_task, job_id, name, finished=time.time())
    return out


def _skip_backup(state: JobState, job_id: str, name: str) -> bool:
    stage = state.stage(job_id)
    return state.done(job_id, name) is not None or stage in TERMINAL or stage is None


def _skip(state: JobState, job_id: str, name: str) -> list[dict] | None:
    """The stored result if this task is done; raises JobCancelled if its job has ended."""
    done = state.done(job_id, name)
    if done is not None:
        return done
    stage = state.stage(job_id)
    if stage in TERMINAL or stage is None:
        raise JobCancelled(f"job {job_id} is {stage or 'gone'}; chunk {name} skipped")
    return None


def _encode_chunk(self, state: JobState, group: list[ChunkSpec], job_id: str, name: str, lease: Lease) -> list[dict]:
    tries = until_up(state.attempt, job_id, name)
    limit = self.app.conf.segenc_max_attempts
    if tries > limit:
        _fail(state, job_id, name, f"chunk {name} was started {limit} times and never finished "
                                   f"(its worker died each time)")
    try:
        results = encode_here_or_remote(self.app, state, group, encode_chunks, _reporter(state, job_id, name),
                                        commit=lambda: until_up(state.claim_commit, job_id, name, name, lease.token))
        return [r.to_dict() for r in results]
    except (JobCancelled, Superseded):
        raise
    except Exception as exc:
        if until_up(state.done, job_id, name) is not None:  # a backup won meanwhile; its job may have moved on
            raise Superseded(f"task {name} of job {job_id} was committed by another attempt") from exc
        if isinstance(exc, (InputError, IntegrityError)):  # the data is at fault: another try cannot help
            _fail(state, job_id, name, f"chunk {name} failed: {exc}", exc)
        if full := storage_full(exc):  # a full disk: not the data's fault, and a retry would fill it again
            try:
                _fail(state, job_id, name, f"chunk {name} failed: {full}", exc)
            finally:  # the shared storage is full: all of the job goes, its upload too (see _remove_job_files)
                if holds_storage(self.app, job_id):
                    _remove_job_files(_root(self.app), job_id, everything=True)
        if tries < limit:
            raise self.retry(exc=exc, countdown=min(2 ** tries, 10))
        _fail(state, job_id, name, f"chunk {name} failed {tries} times: {exc}", exc)


@shared_task(bind=True, name="segenc.finish")
def finish_task(self, results: list[list[dict]] | None, workdir: str, out: str) -> dict:
    """Stitch the job's outputs. Every Redis call waits out a restart (until_up): the main
    instance restarts its Redis with it, and the finish must not fail the whole job for that.
    ``results`` None (a resent body, rescue.py): read them from the tasks' done markers."""
    root, state = _root(self.app), state_of(self.app)
    job_id = workdir.rsplit("/", 1)[-1]
    if results is None and (results := _results_if_all_done(self.app, state, job_id, workdir)) is None:
        raise Ignore()  # not every task is done after all: the chord itself will send the body
    if (done := until_up(state.done, job_id, FINISH)) is not None:
        shutil.rmtree(resolve(root, workdir), ignore_errors=True)  # a copy killed between marker and cleanup
        return done
    if (stage := until_up(state.stage, job_id)) in STOPPED:
        raise JobCancelled(f"job {job_id} is {stage}; not concatenating")
    lease = Lease(state, job_id, FINISH, worker_name(self.app))
    if not until_up(lease.wait_turn, self.app.conf.task_time_limit):
        return until_up(state.done, job_id, FINISH)
    with lease:
        d = _finish(state, root, results, workdir, out)
        until_up(state.mark_done, job_id, FINISH, d)
    # Only now: a copy killed before the done marker is redelivered and needs the plan and chunks.
    shutil.rmtree(resolve(root, workdir), ignore_errors=True)
    until_up(state.apply, ProgressEvent(job_id, "stage", stage=Stage.DONE))
    return d


def _finish(state: JobState, root: Path, results: list[list[dict]], workdir: str, out: str) -> dict:
    plan = load_plan(root, workdir)
    try:
        flat = [ChunkResult.from_dict(r) for group in results for r in group]
        res = finish(plan, flat, root, resolve(root, out), _reporter(state, plan.job_id))
    except Exception as exc:  # name the real cause here: chord_failed only knows the task id
        full = storage_full(exc)
        message = str(full) if full else str(exc) if isinstance(exc, SegencError) else f"stitching failed: {exc!r}"
        until_up(state.apply, ProgressEvent(plan.job_id, "stage", stage=Stage.FAILED, message=message))
        _remove_job_files(root, plan.job_id, everything=full is not None)
        shutil.rmtree(resolve(root, workdir), ignore_errors=True)
        raise
    until_up(state.set, plan.job_id, outputs=[r.to_dict() for r in res.renditions], timings=res.timings)
    d = res.to_dict()
    d["out_dir"], d["manifest"] = out, layout.manifest(out)
    return d


@shared_task(bind=True, name="segenc.chord_failed")
def chord_failed(self, failed_task_id: str, job_id: str, workdir: str | None = None, out: str | None = None) -> None:
    """Errback of the chord body: whatever failed, the job ends ``failed``, never left hanging.

    (Bound tasks are called as link errors with the failed task's id.) A chunk that failed in
    our code has already named itself; this covers the rest (time limits, lost workers).

    One failure is Celery's own, not the job's: its chord bookkeeping raises (a ``ChordError``)
    when Redis goes away while the last task's result is joined and the body sent (a main
    instance SIGKILLed with its Redis did it). Then every task has its done mark, and the job is
    finished here, where the errback runs (the storage's queue), from those results; the finish
    step's lease and done marker make any other copy of it a no-op."""
    state = state_of(self.app)
    cause = self.app.AsyncResult(failed_task_id).result
    if isinstance(cause, ChordError) and workdir and out and until_up(state.stage, job_id) not in TERMINAL:
        results = _results_if_all_done(self.app, state, job_id, workdir)
        if results is not None:
            finish_task(results, workdir, out)
            return
    if until_up(state.stage, job_id) not in TERMINAL:
        detail = str(storage_full(cause) or "") or (f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException)
                                                    else "")
        until_up(state.apply, ProgressEvent(job_id, "stage", stage=Stage.FAILED,
                                             message=f"a task of this job failed outside segenc's control "
                                                     f"({failed_task_id}{': ' + detail if detail else ''})"))
    if self.app.conf.segenc_root and until_up(state.stage, job_id) == Stage.FAILED:
        full = isinstance(cause, BaseException) and storage_full(cause) is not None
        _remove_job_files(_root(self.app), job_id, everything=full)


def _results_if_all_done(app: Celery, state: JobState, job_id: str, workdir: str) -> list[list[dict]] | None:
    """Every task's stored result (in the plan's order), or None while any task is not done."""
    try:
        plan = load_plan(_root(app), workdir)
    except (OSError, ValueError):
        return None
    results = [until_up(state.done, job_id, t.id) for t in plan.tasks]
    return None if any(r is None for r in results) else results


def chunk_priority(duration: float) -> int:
    """Broker priority of a job's chunks (0 first): 1 for <= 10 s, one step more per doubling,
    9 from ~21 min. Shortest job first: a 5 s clip's chunks overtake the queued chunks of four
    40 s clips (prepare and finish run at 0, so a job never waits long to start or to end).
    Long jobs wait while shorter ones keep arriving; they are never refused."""
    step = 1
    while step < 9 and duration > 10 * 2 ** (step - 1):
        step += 1
    return step


def _scheduled(plan: Plan):
    """(task, its chunk specs) in dispatch order (``Plan.schedule``: the stream's first segments first)."""
    by_first = {g[0].chunk_id: g for g in plan.groups()}
    tasks = {t.chunks[0]: t for t in plan.tasks}
    return [(tasks[g[0].chunk_id], by_first[g[0].chunk_id]) for g in plan.schedule()]


def job_signature(app: Celery, plan: Plan, out: str, finish_queue: str | None = None):
    """chord(header, body): the plan's tasks (task id = job:task, visible in inspect), then finish.

    ``finish_queue`` pins the body to workers that hold the storage (the main instance's queue),
    and the audio parts that copy the source's AAC too: they take milliseconds where the source
    is, and a worker without the storage would copy from the Matroska audio copy, whose
    millisecond timestamps lose the trimmed length of the track's last frame."""
    # argsrepr: what `celery inspect active --safe` and Flower show of a task's arguments.
    # Celery's default (a truncated repr of every chunk spec, frame timestamps and all) was a
    # third of the cost of publishing a header: 1.45 -> 1.05 ms per task, measured on 826 tasks.
    header = [signature("segenc.encode_chunk", args=([s.to_dict() for s in g],), app=app)
              .set(task_id=celery_id(plan.job_id, t.id), priority=priority(app, chunk_priority(plan.info.duration)),
                   argsrepr=f"[{plan.job_id}: {', '.join(s.chunk_id for s in g)}]",
                   **({"queue": finish_queue} if finish_queue and g[0].copy else {}))
              for t, g in _scheduled(plan)]
    body = signature("segenc.finish", args=(plan.workdir, out), app=app).set(task_id=celery_id(plan.job_id, FINISH),
                                                                              priority=priority(app, 0))
    if finish_queue:
        body = body.set(queue=finish_queue)
    errback = signature("segenc.chord_failed", args=(plan.job_id,), kwargs={"workdir": plan.workdir, "out": out}, app=app)
    body.link_error(errback.set(queue=finish_queue) if finish_queue else errback)  # runs where the files are
    return chord(header, body)


def dispatch(app: Celery, state: JobState, plan: Plan, out: str, finish_queue: str | None = None):
    """Send the job's chord; returns its AsyncResult. Waits out a Redis restart, and keeps every
    task's message and the body in the job's state first, for rescue.py to resend should a
    message or Celery's chord be lost."""
    sig = job_signature(app, plan, out, finish_queue=finish_queue)
    recipes = {t.options["task_id"].split(":", 1)[1]: {"args": list(t.args), "queue": t.options.get("queue")}
               for t in sig.tasks}
    until_up(state.keep_recipes, plan.job_id, recipes)
    until_up(state.keep_finish, plan.job_id, dict(sig.body))
    result = until_up(sig.apply_async)
    until_up(state.set, plan.job_id, dispatched_at=time.time())
    return result


def submit(app: Celery, job_id: str, source: str, *, ladder, settings: Settings, out: str | None = None,
           queue: str | None = None, info: MediaInfo | None = None):
    """Queue a whole job whose source already sits at root-relative ``source``.

    With ``queue`` (the main instance's), preparing and finishing run where the storage is, and
    chunks may go to any worker: those without the storage transfer segments over HTTP. ``info``
    is the source's probe if the caller has one (it is then not probed again)."""
    return app.send_task("segenc.run_job", args=(job_id, source, list(ladder), settings.to_dict(),
                                                 out or layout.encoded_dir(job_id)),
                         kwargs={"info": info.to_dict()} if info else {},
                         task_id=celery_id(job_id, PREPARE), queue=queue, priority=priority(app, 0))


def _root(app: Celery) -> Path:
    root = app.conf.segenc_root
    if not root:
        raise SegencError("this worker has no storage root (start it with --tmp-dir)")
    return Path(root)


_states: dict[int, JobState] = {}


def state_of(app: Celery) -> JobState:
    """One JobState per app (per process), on the app's state Redis."""
    key = id(app)
    if key not in _states:
        _states[key] = JobState.from_url(state_url_of(app))
    return _states[key]


def _reporter(state: JobState, job_id: str, name: str | None = None) -> Reporter:
    """Apply events to Redis; between them, notice a cancelled or failed job, or (task ``name``)
    another attempt that committed first, and stop early."""
    last = [0.0]

    def report(ev: ProgressEvent) -> None:
        try:
            state.apply(ev)
            now = time.monotonic()
            if now - last[0] > 1.0:
                last[0] = now
                stage = state.stage(job_id)
                if stage in STOPPED:
                    raise JobCancelled(f"job {job_id} was {stage}; stopping chunk")
                if name is not None and state.done(job_id, name) is not None:
                    raise Superseded(f"task {name} of job {job_id} was committed by another attempt")
        except UNAVAILABLE:
            pass  # progress is best effort: a Redis restart must not cost the chunk

    return report


def _remove_job_files(root: Path, job_id: str, everything: bool = True) -> None:
    """A failed job keeps its status in Redis, not its work files: the space comes back. Its
    upload (and thumbnail) stay for a retry, unless the storage ran full (``everything``): then
    all of it goes, so the space the upload took comes back too."""
    for d in (layout.job_dirs(job_id) if everything else layout.failed_job_dirs(job_id)):
        shutil.rmtree(resolve(root, d), ignore_errors=True)


def _fail(state: JobState, job_id: str, name: str, message: str, exc: Exception | None = None):
    state.apply(ProgressEvent(job_id, "chunk_failed", chunk_id=name, message=message))
    state.apply(ProgressEvent(job_id, "stage", stage=Stage.FAILED, message=message))
    raise JobFailed(message) from exc
