"""Lost messages: a job that stopped moving gets the messages it lost sent again.

Two things can be lost to a Redis outage (the main instance restarts its own Redis with it), and
Celery tries neither again; the job would sit in ``encoding`` forever:

- **A task's message.** kombu's Redis transport pops a message from its queue and only then
  records it as unacknowledged; a worker whose connection drops in between (say, it was frozen
  while Redis stopped) holds a message nobody can give back. The task is not done, not leased,
  not queued and not unacknowledged.
- **The chord's body.** Celery's Redis chord keeps its own count beside segenc's done markers:
  the chord's size is written when it is sent, and the header task whose return completes it
  sends the body. An outage at either moment loses the size or the send: every task is done and
  the finish never comes.

So the dispatcher keeps every task's message and the body in the job's state
(``JobState.keep_recipes``, ``keep_finish``), and every sweep of the watchdog thread looks at the
newest jobs still in ``encoding`` that stopped moving: dispatched STALL_SECONDS ago or more, no
task marked done for as long, and nothing of theirs leased now.

- Open tasks (not done, not leased) that, on a Redis broker, sit in none of their queues and not
  among the unacknowledged messages are sent again: same task id, outside the chord (the finish
  below reads their results from the done markers). RabbitMQ loses no message this way: there
  they are left to it. The queues are read at most once per SCAN_EVERY seconds, cluster-wide.
- When every task is done, the body is sent again without results: the finish then reads them
  from the done markers, in the plan's order.

Each at most once per RESEND_EVERY seconds per job. Every task and the finish take a lease and
write a done marker, so a copy that was only late does nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from celery import Celery, signature

from ..stages import Stage
from .app import priority, uses_redis_broker
from .backups import JOBS_SCANNED
from .state import JobState
from .tasks import FINISH, celery_id

STALL_SECONDS = 5.0  # a chord's body starts within milliseconds of its last task; a message is taken as fast
SCAN_EVERY = 10.0  # jobs waiting behind others have the queues read this often at most
RESEND_EVERY = 60.0

log = logging.getLogger(__name__)


def sweep(app: Celery, state: JobState, now: float | None = None) -> list[dict[str, Any]]:
    """Resend what the stalled jobs lost; returns what was sent (job id, tasks or "finish")."""
    now = time.time() if now is None else now
    ids, _ = state.jobs(0, JOBS_SCANNED)
    sent = []
    waiting: dict[str, list[str]] = {}  # job -> its open tasks, none leased: queued, or lost
    for job_id in ids:
        if state.stage(job_id) != Stage.ENCODING or not _stalled(state, job_id, now):
            continue
        names, done = state.recipe_names(job_id), state.done_tasks(job_id)
        open_ = [t for t in names if t not in done]
        if not names or FINISH in done or state.lease_holders(job_id, open_ + [FINISH]):
            continue  # not dispatched by this version, finished, or moving
        if not open_:
            if state.claim_resend(job_id, "finish", RESEND_EVERY):
                _resend_finish(app, state, job_id, now, sent)
        elif uses_redis_broker(app):  # RabbitMQ loses no message this way: left to it
            waiting[job_id] = open_
    # The queues are read at most once per SCAN_EVERY across the cluster, however many jobs wait.
    if waiting and state.claim_turn("rescue-scan", SCAN_EVERY):
        queues = {_finish_queue(state, j) for j in waiting}
        in_flight = _in_flight(app, queues)
        for job_id, open_ in waiting.items():
            lost = [t for t in open_ if celery_id(job_id, t) not in in_flight]
            if lost and state.claim_resend(job_id, "tasks", RESEND_EVERY):
                recipes = state.recipes(job_id, lost)
                for t in lost:
                    app.send_task("segenc.encode_chunk", args=recipes[t]["args"], task_id=celery_id(job_id, t),
                                  queue=recipes[t].get("queue"), priority=priority(app, 0))
                _record(state, job_id, lost, now, sent)
    return sent


def _finish_queue(state: JobState, job_id: str) -> str | None:
    """The queue the job's finish (and its audio copies) go to; None: the default one."""
    return ((state.finish_body(job_id) or {}).get("options") or {}).get("queue")


def _stalled(state: JobState, job_id: str, now: float) -> bool:
    """Dispatched, and no task marked done, STALL_SECONDS ago or more."""
    dispatched = float(state.field(job_id, "dispatched_at") or 0)
    return bool(dispatched) and now - max([dispatched, *state.done_times(job_id).values()]) >= STALL_SECONDS


def _resend_finish(app: Celery, state: JobState, job_id: str, now: float, sent: list) -> None:
    body = state.finish_body(job_id)
    if body is not None:
        signature(body, app=app).apply_async(args=(None,))  # results None: the finish reads the done markers
        _record(state, job_id, [FINISH], now, sent)


def _record(state: JobState, job_id: str, what: list[str], now: float, sent: list) -> None:
    earlier = json.loads(state.field(job_id, "resent") or "[]")
    state.set(job_id, resent=earlier + what, resent_at=now)
    log.warning("job %s stopped moving: sent again %s (lost to a Redis outage)", job_id, ", ".join(what))
    sent.append({"job_id": job_id, "sent": what})


def _in_flight(app: Celery, queues: set[str | None]) -> set[str]:
    """Celery task ids of the messages queued (in ``queues``, every priority) or unacknowledged.
    Queues first: a message taken meanwhile is then among the unacknowledged."""
    queues = {app.conf.task_default_queue} | {q for q in queues if q}  # the chunks' queue, always
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        raws = [raw for q in queues for pri in sorted({channel.priority(p) for p in channel.priority_steps})
                for raw in client.lrange(channel._q_for_pri(q, pri), 0, -1)]
        raws += [raw for raw in client.hvals(channel.unacked_key)]
    ids = set()
    for raw in raws:
        try:
            message = json.loads(raw)
            if isinstance(message, list):  # unacked entries: [message, exchange, routing key]
                message = message[0]
            ids.add((message.get("headers") or {}).get("id") or "")
        except (ValueError, TypeError, AttributeError, IndexError):
            continue
    return ids
