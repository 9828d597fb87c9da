"""CeleryRunner: the chord-shaped pipeline over Redis, as a thin adapter.

    run_job (prepare on a worker)  ->  chord([encode_chunk x N, audio], finish)

Tasks decode a JSON dict, call the pure pipeline function, and encode the result. Paths in task
messages are relative to the storage root; every worker resolves them against its own root
(its ``--tmp-dir``), and refuses any path that lands outside it.

Reliability (reasons in DESIGN.md): late acks + reject on worker loss + prefetch 1 re-run a chunk
whose worker died; an attempt counter in Redis caps re-runs; the visibility timeout exceeds the
hard time limit so long chunks are never handed out twice while they run; the result backend
retries through a Redis restart.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery, chord, shared_task, signature
from celery.backends.base import SyncBackendMixin
from celery.backends.redis import RedisBackend
from celery.exceptions import BackendGetMetaError

from ..errors import InputError, IntegrityError, JobCancelled, JobFailed, SegencError
# Imported here, not in the tasks: a worker loads PyAV and the pipeline once, before forking
# its pool, instead of in each pool process's first task (~100 ms of dispatch latency).
from ..pipeline import encode_chunks, finish, load_plan, prepare
from ..model import ChunkResult, ChunkSpec, EncodeResult, Plan, task_id
from ..progress import ProgressEvent, Reporter
from ..settings import Settings
from ..storage import resolve
from .redis_state import CHANNEL, TERMINAL, JobState, connect

MAX_ATTEMPTS = 3


class PollingRedisBackend(SyncBackendMixin, RedisBackend):
    """Celery's Redis result backend, polled instead of subscribed.

    Stock Celery subscribes to every task it sends (and to every chord header task) over pub/sub
    so that ``.get()`` returns fast. segenc follows jobs through its own Redis state and polls
    ``ready()``; the subscriptions were pure cost, and after a Redis restart their finalizers
    failed in every process that had sent a task. ``.get()`` still works, by polling."""

    def on_task_call(self, producer, task_id):
        pass


def make_app(broker_url: str, *, root: str | os.PathLike | None = None, task_time_limit: int = 3600,
             visibility_timeout: int | None = None, max_attempts: int = MAX_ATTEMPTS,
             cluster_secret: str | None = None) -> Celery:
    """A Celery app wired for segenc. ``root`` is this process's storage root (workers need it)."""
    # "module:Class+redis://..." selects our backend class for the same Redis URL.
    app = Celery("segenc", broker=broker_url, backend=f"{__name__}:PollingRedisBackend+{broker_url}",
                 set_as_current=False)
    vt = visibility_timeout or int(task_time_limit * 1.25) + 60
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_time_limit=task_time_limit, task_soft_time_limit=max(1, task_time_limit - 30),
        broker_transport_options={"visibility_timeout": vt},
        result_backend_transport_options={"visibility_timeout": vt},
        result_backend_always_retry=True, result_backend_max_retries=20,
        broker_connection_retry_on_startup=True,
        result_expires=7 * 86400, task_track_started=True,
        worker_hijack_root_logger=False,
        segenc_root=str(root) if root else None, segenc_max_attempts=max_attempts,
        segenc_cluster_secret=cluster_secret,
    )
    return app


# Tasks: thin adapters. shared_task binds them to every app instance (self.app is the caller's app).


@shared_task(bind=True, name="segenc.run_job")
def run_job(self, job_id: str, source: str, ladder: list[str], settings: dict, out: str) -> str:
    """Probe, plan and split on a worker, then launch the chord. Returns the chord body's id."""
    root, state = _root(self.app), _state(self.app)
    if state.stage(job_id) in TERMINAL:
        return ""
    try:
        plan = prepare(resolve(root, source), root, job_id=job_id, ladder=tuple(ladder),
                       settings=Settings.from_dict(settings), workdir=f"work/{job_id}", report=state.apply,
                       workers=_capacity(self.app))
    except SegencError as exc:
        state.apply(ProgressEvent(job_id, "stage", stage="failed", message=str(exc)))
        raise
    if state.stage(job_id) in TERMINAL:  # cancelled while splitting
        return ""
    state.set(job_id, source_info=plan.info.summary(), planned=[r.to_dict() for r in plan.renditions])
    state.apply(ProgressEvent(job_id, "stage", stage="encoding"))
    queue = (self.request.delivery_info or {}).get("routing_key") or None
    result = job_signature(self.app, plan, out, finish_queue=queue).apply_async()
    state.set(job_id, result_id=result.id)
    return result.id


@shared_task(bind=True, name="segenc.encode_chunk")
def encode_chunk_task(self, specs: list[dict]) -> list[dict]:
    """A segment's renditions (decoded once) or the audio track; see Plan.tasks()."""
    group = [ChunkSpec.from_dict(s) for s in specs]
    job_id, name = group[0].job_id, task_id(group)
    state = _state(self.app)
    stage = state.stage(job_id)
    if stage in ("failed", "cancelled"):
        raise JobCancelled(f"job {job_id} is {stage}; chunk {name} skipped")
    tries = state.attempt(job_id, name)
    limit = self.app.conf.segenc_max_attempts
    if tries > limit:
        _fail(state, job_id, name, f"chunk {name} was started {limit} times and never finished "
                                   f"(its worker died each time)")
    try:
        results = _encode_here_or_remote(self.app, state, group, encode_chunks, _reporter(state, job_id))
        return [r.to_dict() for r in results]
    except JobCancelled:
        raise
    except (InputError, IntegrityError) as exc:  # the data is at fault: another try cannot help
        _fail(state, job_id, name, f"chunk {name} failed: {exc}", exc)
    except Exception as exc:
        if tries < limit:
            raise self.retry(exc=exc, countdown=min(2 ** tries, 10))
        _fail(state, job_id, name, f"chunk {name} failed {tries} times: {exc}", exc)


@shared_task(bind=True, name="segenc.finish")
def finish_task(self, results: list[list[dict]], workdir: str, out: str) -> dict:
    root, state = _root(self.app), _state(self.app)
    plan = load_plan(root, workdir)
    if state.stage(plan.job_id) in ("failed", "cancelled"):
        raise JobCancelled(f"job {plan.job_id} is {state.stage(plan.job_id)}; not concatenating")
    try:
        flat = [ChunkResult.from_dict(r) for group in results for r in group]
        res = finish(plan, flat, root, resolve(root, out), state.apply)
    except SegencError as exc:
        state.apply(ProgressEvent(plan.job_id, "stage", stage="failed", message=str(exc)))
        raise
    finally:
        shutil.rmtree(resolve(root, workdir), ignore_errors=True)
    state.set(plan.job_id, outputs=[r.to_dict() for r in res.renditions], timings=res.timings)
    state.apply(ProgressEvent(plan.job_id, "stage", stage="done"))
    d = res.to_dict()
    d["out_dir"], d["manifest"] = out, f"{out}/manifest.json"
    return d


@shared_task(bind=True, name="segenc.chord_failed")
def chord_failed(self, failed_task_id: str, job_id: str) -> None:
    """Errback of the chord body: whatever failed, the job ends ``failed``, never left hanging.

    (Bound tasks are called as link errors with the failed task's id.) A chunk that failed in
    our code has already named itself; this covers the rest (time limits, lost workers)."""
    state = _state(self.app)
    if state.stage(job_id) not in TERMINAL:
        state.apply(ProgressEvent(job_id, "stage", stage="failed",
                                  message=f"a task of this job failed outside segenc's control ({failed_task_id})"))


def job_signature(app: Celery, plan: Plan, out: str, finish_queue: str | None = None):
    """chord(header, body): one task per chunk (task id = job:chunk, visible in inspect), then finish.

    ``finish_queue`` pins the body to workers that hold the storage (the main instance's queue)."""
    header = [signature("segenc.encode_chunk", args=([s.to_dict() for s in t],), app=app)
              .set(task_id=f"{plan.job_id}:{task_id(t)}") for t in plan.tasks(_capacity(app))]
    body = signature("segenc.finish", args=(plan.workdir, out), app=app).set(task_id=f"{plan.job_id}:finish")
    if finish_queue:
        body = body.set(queue=finish_queue)
    body.link_error(signature("segenc.chord_failed", args=(plan.job_id,), app=app))
    return chord(header, body)


def _capacity(app: Celery) -> int | None:
    """Worker processes online now (from heartbeats), for balancing the last round of tasks."""
    try:
        r = _state(app).r
        total = sum(int(r.hget(k, "concurrency") or 0) for k in r.scan_iter(f"{HEARTBEAT_KEY}*"))
    except redis.RedisError:
        return None
    return total or None


MAIN_QUEUE = "segenc.main"
CLUSTER_KEY = "segenc:cluster"


def submit(app: Celery, job_id: str, source: str, *, ladder, settings: Settings, out: str | None = None,
           queue: str | None = None):
    """Queue a whole job whose source already sits at root-relative ``source``.

    With ``queue`` (the main instance's), preparing and finishing run where the storage is, and
    chunks may go to any worker: those without the storage transfer segments over HTTP."""
    return app.send_task("segenc.run_job", args=(job_id, source, list(ladder), settings.to_dict(),
                                                 out or f"encoded/{job_id}"), task_id=f"{job_id}:prepare",
                         queue=queue)


REMOTE_DIR = "remote"


def _remote_root(root: Path) -> Path:
    """This worker's own cache of transferred files (per node, so neighbours never collide)."""
    return root / REMOTE_DIR / (os.environ.get("SEGENC_WORKER_NAME") or "worker")


def _encode_here_or_remote(app: Celery, state: JobState, group: list[ChunkSpec], run, report) -> list[ChunkResult]:
    """Read the shared storage when this worker has it; otherwise fetch, encode locally, upload."""
    root = _root(app)
    job_id = group[0].job_id
    if resolve(root, f"work/{job_id}/plan.json").exists():
        return run(group, root, report)
    web = state.r.hget(CLUSTER_KEY, "web_url")
    secret = app.conf.segenc_cluster_secret
    if not web or not secret:
        return run(group, root, report)  # no main instance to transfer from: fails naming the file
    from .transfer import Transfer

    local = _remote_root(root)
    t = Transfer(web, secret, local)
    t.fetch(group[0].source)  # one segment (or the audio track) serves every rendition in the group
    results = run(group, local, report)
    for spec in group:
        t.push(spec.output)
        resolve(local, spec.output).unlink(missing_ok=True)
    state.r.hincrby(CLUSTER_KEY, "bytes_transferred", t.bytes_in + t.bytes_out)
    return results


def sweep_remote(root: Path, state: JobState) -> None:
    """Drop local copies of jobs that have ended (or vanished)."""
    for job_dir in (_remote_root(root) / "work").glob("*"):
        if state.stage(job_dir.name) in (*TERMINAL, None):
            shutil.rmtree(job_dir, ignore_errors=True)


def _root(app: Celery) -> Path:
    root = app.conf.segenc_root
    if not root:
        raise SegencError("this worker has no storage root (start it with --tmp-dir)")
    return Path(root)


_states: dict[int, JobState] = {}


def _state(app: Celery) -> JobState:
    key = id(app)
    if key not in _states:
        _states[key] = JobState(connect(app.conf.broker_url))
    return _states[key]


def _reporter(state: JobState, job_id: str) -> Reporter:
    """Apply events to Redis; between them, notice a cancelled or failed job and stop early."""
    last = [0.0]

    def report(ev: ProgressEvent) -> None:
        try:
            state.apply(ev)
            now = time.monotonic()
            if now - last[0] > 1.0:
                last[0] = now
                stage = state.stage(job_id)
                if stage in ("failed", "cancelled"):
                    raise JobCancelled(f"job {job_id} was {stage}; stopping chunk")
        except (redis.ConnectionError, redis.TimeoutError):
            pass  # progress is best effort: a Redis restart must not cost the chunk

    return report


def _fail(state: JobState, job_id: str, name: str, message: str, exc: Exception | None = None):
    state.apply(ProgressEvent(job_id, "chunk_failed", chunk_id=name, message=message))
    state.apply(ProgressEvent(job_id, "stage", stage="failed", message=message))
    raise JobFailed(message) from exc


class CeleryRunner:
    """Runs a prepared plan as a chord and waits for it, relaying progress from Redis."""

    def __init__(self, broker_url: str, root: str | os.PathLike, app: Celery | None = None,
                 timeout: float | None = None) -> None:
        self.app = app or make_app(broker_url, root=root)
        self.root = Path(root).absolute()
        self.state = JobState(connect(broker_url))
        self.timeout = timeout

    def work_root(self, out_dir: Path) -> Path:
        return self.root

    @property
    def workers(self) -> int | None:
        """Worker processes online now (sizes an automatic chunk length)."""
        return _capacity(self.app)

    def execute(self, plan: Plan, root, out_dir: Path, report: Reporter, inputs=None) -> EncodeResult:
        # No overlaps_split: a chord is sent whole, so encode() finishes ``inputs`` (the split) first.
        out = f"encoded/{plan.job_id}"
        self.state.create(plan.job_id, stage="encoding")
        stop, listening = threading.Event(), threading.Event()
        relay = threading.Thread(target=self._relay, args=(plan.job_id, report, stop, listening), daemon=True)
        relay.start()
        listening.wait(5)  # subscribed before the chord goes out: the first chunks' events are not lost
        try:
            result = job_signature(self.app, plan, out).apply_async()
            deadline = time.monotonic() + self.timeout if self.timeout else None
            while not self._ready(result):
                stage = self._stage(plan.job_id)
                if stage in ("failed", "cancelled"):
                    snap = self.state.snapshot(plan.job_id) or {}
                    raise JobFailed(snap.get("error") or f"job {plan.job_id} {stage}")
                if deadline and time.monotonic() > deadline:
                    raise JobFailed(f"job {plan.job_id} did not finish within {self.timeout:.0f} s")
                time.sleep(0.02)  # one GET per poll: cheap, and the job ends when it ends
            if result.failed():
                snap = self.state.snapshot(plan.job_id) or {}
                raise JobFailed(snap.get("error") or str(result.result))
            # Read the stored result; .get() would start Celery's pub/sub result consumer, whose
            # finalizers outlive this call and break when Redis restarts.
            data: dict[str, Any] = result.result
        finally:
            stop.set()
            relay.join(timeout=2)
        produced = resolve(self.root, out)
        if produced != out_dir.resolve():
            out_dir.mkdir(parents=True, exist_ok=True)
            for f in sorted(produced.iterdir(), key=lambda p: p.name == "manifest.json"):
                shutil.move(str(f), out_dir / f.name)  # manifest last
            produced.rmdir()
        data["out_dir"], data["manifest"] = str(out_dir), str(out_dir / "manifest.json")
        return EncodeResult.from_dict(data)

    @staticmethod
    def _ready(result) -> bool:
        try:
            return result.ready()
        except (redis.ConnectionError, redis.TimeoutError, BackendGetMetaError):
            return False  # Redis is restarting: the job lives on in its append-only file

    def _stage(self, job_id: str) -> str | None:
        try:
            return self.state.stage(job_id)
        except (redis.ConnectionError, redis.TimeoutError):
            return None

    def _relay(self, job_id: str, report: Reporter, stop: threading.Event, listening: threading.Event) -> None:
        """Forward the job's events from Redis pub/sub; resubscribe after a Redis restart."""
        while not stop.is_set():
            pubsub = self.state.r.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(CHANNEL)
                listening.set()
                while not stop.is_set():
                    msg = pubsub.get_message(timeout=0.05)
                    if msg and f'"job_id":"{job_id}"' in msg["data"]:
                        report(ProgressEvent.from_json(msg["data"]))
            except (redis.ConnectionError, redis.TimeoutError):
                stop.wait(0.5)
            finally:
                pubsub.close()


HEARTBEAT_KEY = "segenc:worker:"


def heartbeat(app: Celery, name: str, concurrency: int, stop: threading.Event, every: float = 5.0) -> None:
    """Advertise this worker node in Redis (expires if the node dies) until ``stop`` is set."""
    r = connect(app.conf.broker_url)
    key = HEARTBEAT_KEY + name
    root = Path(app.conf.segenc_root) if app.conf.segenc_root else None
    if root is not None:
        shutil.rmtree(_remote_root(root), ignore_errors=True)  # a dead predecessor's copies
    while not stop.is_set():
        try:
            if root is not None:
                sweep_remote(root, JobState(r))
            r.hset(key, mapping={"last_heartbeat": time.time(), "concurrency": concurrency,
                                 "node": f"{name}@{os.uname().nodename}", "pid": os.getpid()})
            r.expire(key, int(every * 6))
        except Exception:  # Redis away for a moment: the next beat will tell
            pass
        stop.wait(every)
    try:
        r.delete(key)
    except Exception:
        pass


def run_worker(app: Celery, name: str, concurrency: int | None = None, loglevel: str = "INFO",
               queues: tuple[str, ...] = ("celery",)) -> None:
    """Start a Celery worker node called ``name`` (blocks), advertising itself with heartbeats."""
    concurrency = concurrency or os.cpu_count() or 1
    stop = threading.Event()
    beat = threading.Thread(target=heartbeat, args=(app, name, concurrency, stop), daemon=True)
    beat.start()
    try:
        _worker_main(app, name, concurrency, loglevel, queues)
    finally:
        stop.set()
        beat.join(timeout=2)


def _worker_main(app: Celery, name: str, concurrency: int, loglevel: str, queues: tuple[str, ...]) -> None:
    argv = ["worker", f"--hostname={name}@%h" if "@" not in name else f"--hostname={name}",
            f"--concurrency={concurrency}", "--pool=prefork", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle", f"--queues={','.join(queues)}"]
    app.worker_main(argv)
