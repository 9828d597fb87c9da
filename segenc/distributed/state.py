"""Cluster state in Redis: any process (the service, a CLI elsewhere) can follow any job.

This module owns every Redis key and channel segenc uses (Celery's own keys aside); nothing else
touches a Redis client. Chunk tasks apply their progress events here (absolute frame counts per
chunk, so a lost or repeated event never double-counts) and publish them on ``segenc:events``.

    segenc:job:<id>           hash: stage, error, totals (JSON), created_at, started_at, ... (+ caller fields)
    segenc:job:<id>:frames    hash: chunk_id -> "rendition frames"
    segenc:job:<id>:running   hash: chunk_id -> worker name
    segenc:job:<id>:attempts  hash: task id -> tries started
    segenc:job:<id>:lease:<t> string: the token of the attempt running task t (expires unless renewed)
    segenc:job:<id>:done      hash: task id -> its result (JSON), written before the lease is released
    segenc:job:<id>:done_at   hash: task id -> when it was marked done (epoch seconds, same write)
    segenc:job:<id>:requeues  list: JSON {task, chunks, worker, reason, time}, newest last
    segenc:job:<id>:tasks     hash: task id -> JSON {started, cost, frames, chunks, worker[, finished]}
    segenc:job:<id>:recipes   hash: task id -> JSON of its message (args, chord part, queue), for a backup
    segenc:job:<id>:backups   hash: task id -> JSON {time, worker, reason[, winner]} (one backup per task)
    segenc:job:<id>:claim:<t> string: "<lease key>|<token>" of the attempt that commits task t's outputs
    segenc:jobs               sorted set: job ids by creation time
    segenc:worker:<name>      hash: last_heartbeat, concurrency, node, pid (expires if the node dies)
    segenc:cluster            hash: web_url (where workers transfer files), bytes_transferred
    segenc:watchdog           string: the node whose watchdog sweeps now (expires)
    segenc:events             pub/sub channel: every ProgressEvent, as JSON
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis
from kombu.exceptions import OperationalError

from ..progress import ProgressEvent, summarize
from . import brokers
from ..stages import TERMINAL, Stage

CHANNEL = "segenc:events"
JOBS_KEY = "segenc:jobs"
WORKER_KEY = "segenc:worker:"
CLUSTER_KEY = "segenc:cluster"
WATCHDOG_KEY = "segenc:watchdog"
TURN_KEY = "segenc:turn:"  # cluster-wide rate limits (JobState.claim_turn)
METRICS_KEY = "segenc:metrics"  # cluster-wide counters for /metrics (chunks, encode seconds, bytes)
PARTS = ("", "frames", "running", "attempts", "done", "done_at", "requeues", "tasks", "recipes", "backups",
         "finish", "resend:finish", "resend:tasks")
# Compare-and-act on a token, so only the holder renews or releases.
_RENEW = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
_TURN = ("local v = redis.call('get', KEYS[1]) if v == false or v == ARGV[1] then "
         "redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end return 0")
# The commit claim: the first attempt of a task to finish takes it, unless the task is done or a
# live attempt (its lease still held) took it first. Then only the winner renames its outputs
# into place and writes the done marker; a loser discards what it wrote.
_CLAIM = ("if redis.call('hexists', KEYS[2], ARGV[1]) == 1 then return 0 end "
          "local v = redis.call('get', KEYS[1]) "
          "if v and v ~= ARGV[2] then local i = string.find(v, '|', 1, true) "
          "if i and redis.call('get', string.sub(v, 1, i - 1)) == string.sub(v, i + 1) then return 0 end end "
          "redis.call('set', KEYS[1], ARGV[2]) return 1")
TOMBSTONE_SECONDS = 3600
# Failures a caller may meet while Redis restarts (the job itself lives on in the append-only file).
UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError)
RedisError = redis.RedisError


REDIS_PATIENCE = 120.0  # seconds a task waits for Redis to come back (a restart) before it gives up


def until_up(fn, *args, **kw):
    """Call ``fn`` until Redis answers: a finished chunk must not be lost to a Redis restart.
    (kombu's OperationalError: a publish that met the outage.)"""
    deadline = time.monotonic() + REDIS_PATIENCE
    while True:
        try:
            return fn(*args, **kw)
        except (*UNAVAILABLE, OperationalError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def connect(url: str, **kw: Any) -> redis.Redis:
    """A client for the state Redis at ``url``: redis://, rediss:// or a sentinel URL (the master
    it names, found through the sentinels and followed across a failover; see brokers.py)."""
    kw = {"decode_responses": True, "health_check_interval": 30, **kw}
    if brokers.scheme(url) == "sentinel":
        from redis.sentinel import Sentinel

        sen = brokers.parse_sentinel(url)
        timeout = kw.get("socket_connect_timeout")
        sentinels = Sentinel(list(sen.hosts), sentinel_kwargs={"socket_connect_timeout": timeout} if timeout else None)
        return sentinels.master_for(sen.master, db=sen.db, password=sen.password, username=sen.username, **kw)
    return redis.Redis.from_url(brokers.redis_client_url(url), **kw)


def check_reachable(url: str, timeout: float = 3) -> str | None:
    """None if Redis at ``url`` answers (once, no retries), else what is wrong, for a person."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        connect(url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=timeout, decode_responses=False).ping()
    except redis.AuthenticationError:
        return "Redis refused the password in the URL; check --redis-url / --state-url"
    except brokers.BrokerURLError as exc:
        return str(exc)
    except redis.RedisError as exc:
        return f"cannot reach Redis ({exc}); is the main instance running?"
    return None


class Subscription:
    """The event channel, read with a timeout: ``get()`` returns one event's JSON text or None."""

    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._pubsub.subscribe(CHANNEL)

    def get(self, timeout: float) -> str | None:
        msg = self._pubsub.get_message(timeout=timeout)
        return msg["data"] if msg else None

    def close(self) -> None:
        self._pubsub.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class JobState:
    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    @classmethod
    def from_url(cls, url: str) -> "JobState":
        return cls(connect(url))

    @staticmethod
    def key(job_id: str, part: str = "") -> str:
        return f"segenc:job:{job_id}" + (f":{part}" if part else "")

    def ping(self) -> bool:
        return bool(self._r.ping())

    def subscribe(self) -> Subscription:
        return Subscription(self._r)

    def publish(self, ev: ProgressEvent) -> None:
        """Tell live followers without recording anything (e.g. a job was deleted)."""
        self._r.publish(CHANNEL, ev.to_json())

    def create(self, job_id: str, **fields: Any) -> None:
        now = time.time()
        data = {"stage": Stage.QUEUED.value, "created_at": now, "updated_at": now}
        data.update({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items() if v is not None})
        pipe = self._r.pipeline()
        pipe.hset(self.key(job_id), mapping=data)
        pipe.zadd(JOBS_KEY, {job_id: now})
        pipe.execute()

    def exists(self, job_id: str) -> bool:
        return bool(self._r.exists(self.key(job_id)))

    def set(self, job_id: str, **fields: Any) -> None:
        data = {k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in fields.items() if v is not None}
        data["updated_at"] = time.time()
        self._r.hset(self.key(job_id), mapping=data)

    def field(self, job_id: str, name: str) -> str | None:
        return self._r.hget(self.key(job_id), name)

    def stage(self, job_id: str) -> str | None:
        return self._r.hget(self.key(job_id), "stage")

    def apply(self, ev: ProgressEvent) -> None:
        """Record an event and publish it. Terminal stages are sticky: nothing overwrites them."""
        k = self.key(ev.job_id)
        pipe = self._r.pipeline()
        if ev.kind == "stage" and ev.stage:
            if self.stage(ev.job_id) in TERMINAL and ev.stage != Stage.CANCELLED:
                return
            fields: dict[str, Any] = {"stage": ev.stage, "updated_at": ev.time}
            if ev.stage == Stage.ENCODING:
                fields["started_at"] = ev.time
            if ev.message:
                fields["error"] = ev.message
            if ev.stage in TERMINAL:
                pipe.delete(self.key(ev.job_id, "running"))
            pipe.hset(k, mapping=fields)
        elif ev.kind == "planned" and ev.totals:
            pipe.hset(k, "totals", json.dumps(ev.totals))
        elif ev.chunk_id:
            if ev.rendition and ev.kind in ("chunk_started", "frames", "chunk_done"):
                pipe.hset(self.key(ev.job_id, "frames"), ev.chunk_id, f"{ev.rendition} {ev.frames}")
            if ev.kind == "chunk_started" and ev.worker:
                pipe.hset(self.key(ev.job_id, "running"), ev.chunk_id, ev.worker)
            elif ev.kind in ("chunk_done", "chunk_failed"):
                pipe.hdel(self.key(ev.job_id, "running"), ev.chunk_id)
            if ev.kind == "chunk_failed":
                pipe.hincrby(METRICS_KEY, "chunks_failed", 1)
        pipe.publish(CHANNEL, ev.to_json())
        pipe.execute()

    def attempt(self, job_id: str, chunk_id: str) -> int:
        """Count one more start of this chunk; returns the count (1 on the first try)."""
        return int(self._r.hincrby(self.key(job_id, "attempts"), chunk_id, 1))

    def snapshot(self, job_id: str) -> dict[str, Any] | None:
        pipe = self._r.pipeline()
        pipe.hgetall(self.key(job_id))
        pipe.hgetall(self.key(job_id, "frames"))
        pipe.hgetall(self.key(job_id, "running"))
        job, frames, running = pipe.execute()
        if not job:
            return None
        stage = job.get("stage", Stage.QUEUED.value)
        totals = json.loads(job.get("totals") or "{}")
        chunk_frames = {}
        for c, v in frames.items():
            rend, _, n = v.partition(" ")
            chunk_frames[c] = (rend, int(n or 0))
        fps = None
        started = float(job.get("started_at") or 0)
        if started and stage == Stage.ENCODING:
            elapsed = time.time() - started
            done = sum(n for _, n in chunk_frames.values())
            fps = done / elapsed if elapsed > 0.5 and done else None
        snap = summarize(stage, totals, chunk_frames, running, fps, job.get("error"))
        snap["requeues"] = self.requeues(job_id)
        snap["backups"] = self.backups(job_id)
        for key, value in job.items():
            if key not in snap and key not in ("totals",):
                snap[key] = _maybe_json(value)
        snap["job_id"] = job_id
        return snap

    def jobs(self, offset: int = 0, limit: int = 50) -> tuple[list[str], int]:
        ids = self._r.zrevrange(JOBS_KEY, offset, offset + limit - 1)
        return ids, int(self._r.zcard(JOBS_KEY))

    def delete(self, job_id: str) -> None:
        leases = list(self._r.scan_iter(self.key(job_id, "lease:*"))) + list(self._r.scan_iter(self.key(job_id, "claim:*")))
        pipe = self._r.pipeline()
        for key in [self.key(job_id, part) for part in PARTS] + leases:
            pipe.delete(key)
        pipe.zrem(JOBS_KEY, job_id)
        pipe.execute()

    def tombstone(self, job_id: str) -> None:
        """Drop a job from the list, keeping its (cancelled) stage visible to chunks still running
        for a while, then let it expire."""
        pipe = self._r.pipeline()
        pipe.zrem(JOBS_KEY, job_id)
        pipe.expire(self.key(job_id), TOMBSTONE_SECONDS)
        pipe.execute()

    def attempts(self, job_id: str, chunk_id: str) -> int:
        return int(self._r.hget(self.key(job_id, "attempts"), chunk_id) or 0)

    def all_attempts(self, job_id: str) -> dict[str, int]:
        """task id -> tries started, for every task of the job that ever started."""
        return {k: int(v) for k, v in self._r.hgetall(self.key(job_id, "attempts")).items()}

    def running(self, job_id: str) -> dict[str, str]:
        """chunk id -> worker, for the chunks of ``job_id`` running now."""
        return self._r.hgetall(self.key(job_id, "running"))

    # Leases: a running task proves it is alive; the watchdog requeues tasks whose lease lapsed.

    def acquire_lease(self, job_id: str, task: str, token: str, ttl: float) -> bool:
        return bool(self._r.set(self.key(job_id, f"lease:{task}"), token, nx=True, px=int(ttl * 1000)))

    def renew_lease(self, job_id: str, task: str, token: str, ttl: float) -> bool:
        return bool(self._r.eval(_RENEW, 1, self.key(job_id, f"lease:{task}"), token, int(ttl * 1000)))

    def release_lease(self, job_id: str, task: str, token: str) -> None:
        self._r.eval(_RELEASE, 1, self.key(job_id, f"lease:{task}"), token)

    def lease_holder(self, job_id: str, task: str) -> str | None:
        return self._r.get(self.key(job_id, f"lease:{task}"))

    def claim_commit(self, job_id: str, task: str, lease_task: str, token: str) -> bool:
        """True if this attempt (holding lease ``lease_task`` with ``token``) may commit ``task``."""
        holder = f"{self.key(job_id, 'lease:' + lease_task)}|{token}"
        return bool(self._r.eval(_CLAIM, 2, self.key(job_id, f"claim:{task}"), self.key(job_id, "done"), task, holder))

    # Task records: what the backup planner needs to see a straggler and send it a copy.

    def note_task(self, job_id: str, task: str, **info: Any) -> None:
        """Merge ``info`` into the task's record (started, cost, frames, recipe, finished, ...)."""
        k = self.key(job_id, "tasks")
        raw = self._r.hget(k, task)
        record = {**(json.loads(raw) if raw else {}), **info}
        self._r.hset(k, task, json.dumps(record))

    def note_recipe(self, job_id: str, task: str, recipe: dict[str, Any]) -> None:
        self._r.hset(self.key(job_id, "recipes"), task, json.dumps(recipe))

    def recipe(self, job_id: str, task: str) -> dict[str, Any] | None:
        raw = self._r.hget(self.key(job_id, "recipes"), task)
        return json.loads(raw) if raw is not None else None

    def keep_recipes(self, job_id: str, recipes: dict[str, dict[str, Any]]) -> None:
        """Every task's message as dispatched (a started task's own record replaces it)."""
        if recipes:
            self._r.hset(self.key(job_id, "recipes"), mapping={t: json.dumps(r) for t, r in recipes.items()})

    def recipe_names(self, job_id: str) -> list[str]:
        return self._r.hkeys(self.key(job_id, "recipes"))

    def recipes(self, job_id: str, tasks: list[str]) -> dict[str, dict[str, Any]]:
        raws = self._r.hmget(self.key(job_id, "recipes"), tasks) if tasks else []
        return {t: json.loads(v) for t, v in zip(tasks, raws) if v is not None}

    def lease_holders(self, job_id: str, tasks: list[str]) -> dict[str, str]:
        """task -> holder, for those of ``tasks`` leased now."""
        if not tasks:
            return {}
        held = self._r.mget([self.key(job_id, f"lease:{t}") for t in tasks])
        return {t: h for t, h in zip(tasks, held) if h is not None}

    def task_records(self, job_id: str) -> dict[str, dict[str, Any]]:
        return {t: json.loads(v) for t, v in self._r.hgetall(self.key(job_id, "tasks")).items()}

    def done_tasks(self, job_id: str) -> set[str]:
        return set(self._r.hkeys(self.key(job_id, "done")))

    def add_backup(self, job_id: str, task: str, **info: Any) -> bool:
        """Record a backup of ``task``; False if it already has one (never two)."""
        return bool(self._r.hsetnx(self.key(job_id, "backups"), task, json.dumps({"time": time.time(), **info})))

    def note_backup(self, job_id: str, task: str, **info: Any) -> None:
        k = self.key(job_id, "backups")
        raw = self._r.hget(k, task)
        if raw is not None:
            self._r.hset(k, task, json.dumps({**json.loads(raw), **info}))

    def backups(self, job_id: str) -> dict[str, dict[str, Any]]:
        return {t: json.loads(v) for t, v in self._r.hgetall(self.key(job_id, "backups")).items()}

    def chunk_frames(self, job_id: str) -> dict[str, int]:
        """chunk id -> frames encoded so far (from progress events)."""
        return {c: int(v.partition(" ")[2] or 0) for c, v in self._r.hgetall(self.key(job_id, "frames")).items()}

    def mark_done(self, job_id: str, task: str, result: Any) -> None:
        pipe = self._r.pipeline()
        pipe.hset(self.key(job_id, "done"), task, json.dumps(result))
        pipe.hset(self.key(job_id, "done_at"), task, time.time())
        chunks = result if isinstance(result, list) and all(isinstance(r, dict) for r in result) else []
        if chunks and all("seconds" in r for r in chunks):  # a chunk task's results: count them once, here
            pipe.hincrby(METRICS_KEY, "chunks_done", len(chunks))
            pipe.hincrbyfloat(METRICS_KEY, "encode_seconds", sum(float(r["seconds"]) for r in chunks))
        pipe.execute()

    def done_at(self, job_id: str, task: str) -> float | None:
        """When ``task`` was marked done (None: not done, or done before this was recorded)."""
        raw = self._r.hget(self.key(job_id, "done_at"), task)
        return float(raw) if raw is not None else None

    def done(self, job_id: str, task: str) -> Any | None:
        """A finished task's result, or None if it has not finished."""
        raw = self._r.hget(self.key(job_id, "done"), task)
        return json.loads(raw) if raw is not None else None

    def done_times(self, job_id: str) -> dict[str, float]:
        """task -> when it was marked done, for every done task of the job."""
        return {t: float(v) for t, v in self._r.hgetall(self.key(job_id, "done_at")).items()}

    # The chord's body, kept for a resend if Celery's chord loses it (see rescue.py).

    def keep_finish(self, job_id: str, body: dict[str, Any]) -> None:
        self._r.set(self.key(job_id, "finish"), json.dumps(body))

    def finish_body(self, job_id: str) -> dict[str, Any] | None:
        raw = self._r.get(self.key(job_id, "finish"))
        return json.loads(raw) if raw is not None else None

    def claim_resend(self, job_id: str, what: str, every: float) -> bool:
        """True at most once per ``every`` seconds per job and ``what`` (see rescue.py)."""
        return self._once(self.key(job_id, f"resend:{what}"), every)

    def note_requeue(self, job_id: str, task: str, chunks: list[str], reason: str) -> str | None:
        """Record that ``task`` was given to another worker; its chunks stop showing as running.
        Returns the worker it was running on, if known."""
        running = self.running(job_id)
        worker = next((running[c] for c in chunks if c in running), None)
        entry = {"task": task, "chunks": chunks, "worker": worker, "reason": reason, "time": time.time()}
        pipe = self._r.pipeline()
        if chunks:
            pipe.hdel(self.key(job_id, "running"), *chunks)
        pipe.rpush(self.key(job_id, "requeues"), json.dumps(entry))
        pipe.hincrby(METRICS_KEY, "chunks_requeued", max(1, len(chunks)))
        pipe.ltrim(self.key(job_id, "requeues"), -100, -1)
        ev = ProgressEvent(job_id, "chunk_requeued", chunk_id=task, worker=worker, message=reason)
        pipe.publish(CHANNEL, ev.to_json())
        pipe.execute()
        return worker

    def requeues(self, job_id: str) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self._r.lrange(self.key(job_id, "requeues"), 0, -1)]

    def claim_turn(self, name: str, every: float) -> bool:
        """True at most once per ``every`` seconds across the cluster for ``name``."""
        return self._once(TURN_KEY + name, every)

    def _once(self, key: str, every: float) -> bool:
        """Set ``key`` unless it exists, for ``every`` seconds: True if this call set it."""
        return bool(self._r.set(key, time.time(), nx=True, px=int(every * 1000)))

    def watchdog_turn(self, node: str, ttl: float) -> bool:
        """True if ``node`` may sweep now (one watchdog at a time across the cluster)."""
        return bool(self._r.eval(_TURN, 1, WATCHDOG_KEY, node, int(ttl * 1000)))

    # Worker nodes: heartbeats.

    def beat(self, name: str, ttl: float, **info: Any) -> None:
        pipe = self._r.pipeline()
        pipe.hset(WORKER_KEY + name, mapping={"last_heartbeat": time.time(), **info})
        pipe.expire(WORKER_KEY + name, int(ttl))
        pipe.execute()

    def forget_worker(self, name: str) -> None:
        self._r.delete(WORKER_KEY + name)

    def workers(self) -> dict[str, dict[str, str]]:
        """name -> its last heartbeat (last_heartbeat, concurrency, node, pid), for live nodes."""
        keys = sorted(self._r.scan_iter(f"{WORKER_KEY}*"))
        pipe = self._r.pipeline()
        for k in keys:
            pipe.hgetall(k)
        return {k[len(WORKER_KEY):]: v for k, v in zip(keys, pipe.execute()) if v}

    def capacity(self) -> int | None:
        """Worker processes online now (None if none or Redis is away)."""
        try:
            total = sum(int(w.get("concurrency") or 0) for w in self.workers().values())
        except redis.RedisError:
            return None
        return total or None

    # The cluster: where the main instance serves transfers, and how much moved.

    def advertise(self, web_url: str) -> None:
        self._r.hset(CLUSTER_KEY, mapping={"web_url": web_url})

    def web_url(self) -> str | None:
        return self._r.hget(CLUSTER_KEY, "web_url")

    def add_transferred(self, nbytes: int) -> None:
        self._r.hincrby(CLUSTER_KEY, "bytes_transferred", nbytes)

    def transferred(self) -> int:
        return int(self._r.hget(CLUSTER_KEY, "bytes_transferred") or 0)


    # Metrics: counters since the cluster's Redis was created, and gauges read now.

    def count(self, name: str, amount: int = 1) -> None:
        self._r.hincrby(METRICS_KEY, name, amount)

    def counters(self) -> dict[str, float]:
        """chunks_done, chunks_failed, chunks_requeued, encode_seconds, bytes_served (0 if never counted)."""
        raw = self._r.hgetall(METRICS_KEY)
        names = ("chunks_done", "chunks_failed", "chunks_requeued", "encode_seconds", "bytes_served")
        return {n: float(raw.get(n) or 0) for n in names}

    def stage_counts(self) -> dict[str, int]:
        """How many jobs are in each stage now."""
        ids = self._r.zrange(JOBS_KEY, 0, -1)
        pipe = self._r.pipeline()
        for job_id in ids:
            pipe.hget(self.key(job_id), "stage")
        counts: dict[str, int] = {}
        for stage in pipe.execute():
            if stage:
                counts[stage] = counts.get(stage, 0) + 1
        return counts

    def queue_depths(self, queues: tuple[str, ...]) -> dict[str, int]:
        """Messages waiting in each Celery queue (kombu's Redis transport keeps a queue as a list)."""
        pipe = self._r.pipeline()
        for q in queues:
            pipe.llen(q)
        return dict(zip(queues, (int(n) for n in pipe.execute())))

    def finished_jobs(self) -> list[tuple[str, str, float]]:
        """(job id, stage, when it last changed) for every job in a terminal stage."""
        ids = self._r.zrange(JOBS_KEY, 0, -1)
        pipe = self._r.pipeline()
        for job_id in ids:
            pipe.hmget(self.key(job_id), "stage", "updated_at")
        out = []
        for job_id, (stage, updated) in zip(ids, pipe.execute()):
            if stage in TERMINAL:
                out.append((job_id, stage, float(updated or 0)))
        return out


def _maybe_json(v: str) -> Any:
    if v and v[0] in "{[":
        try:
            return json.loads(v)
        except ValueError:
            return v
    try:
        return float(v) if "." in v or v.isdigit() else v
    except ValueError:
        return v
