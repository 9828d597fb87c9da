"""The watchdog: gives every task whose worker died to another worker within seconds.

Celery over Redis keeps each delivered, not yet acknowledged message in kombu's ``unacked`` hash
until the visibility timeout (an hour and more here, so long chunks are never handed out twice).
When a worker's whole process group dies, its messages sit there that long. The watchdog looks at
those messages every SWEEP_SECONDS: a segenc task that is neither leased (lease.py) nor done, and
was delivered more than GRACE_SECONDS ago, has lost its worker, so its message goes back to the
head of its queue through kombu's own restore (atomic: two watchdogs never restore one message
twice). Messages with an ETA in the future (retries waiting out their countdown) are left alone.
A done task's message still unacknowledged GRACE_SECONDS after it was marked done is a copy whose
worker died before acknowledging it: it goes back too, to be skipped (and so to count for its
chord). Sooner than that it is a live worker between releasing its lease and acknowledging.

Every worker node runs a watchdog thread; a short Redis lock lets one sweep at a time. Only a
Redis broker needs it: on RabbitMQ (AMQP) the broker itself redelivers a lost consumer's messages.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from datetime import datetime, timezone
from typing import Any

from celery import Celery

from ..stages import TERMINAL
from . import backups, rescue
from .app import state_url_of, uses_redis_broker
from .lease import LEASE_SECONDS
from .state import UNAVAILABLE, JobState

SWEEP_SECONDS = 1.0
GRACE_SECONDS = 3.0  # a message just delivered takes its lease within milliseconds; this is slack


def sweep(app: Celery, state: JobState, now: float | None = None) -> list[dict[str, Any]]:
    """Requeue every lost segenc task once; returns what was requeued (task id, chunks, reason)."""
    now = time.time() if now is None else now
    requeued = []
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        client = channel.client
        entries = client.hgetall(channel.unacked_key)
        if not entries:
            return []
        delivered = {_text(t): s for t, s in client.zrange(channel.unacked_index_key, 0, -1, withscores=True)}
        for tag, raw in entries.items():
            tag = _text(tag)
            try:
                message = json.loads(raw)[0]
            except (ValueError, IndexError, TypeError):
                continue
            headers = message.get("headers") or {}
            task_name, task_id = headers.get("task") or "", headers.get("id") or ""
            if not task_name.startswith("segenc.") or ":" not in task_id:
                continue
            if _waiting(headers.get("eta"), now) or now - delivered.get(tag, now) < GRACE_SECONDS:
                continue
            job_id, name = task_id.split(":", 1)
            if state.lease_holder(job_id, name) is not None:
                continue  # alive
            stage = state.stage(job_id)
            done = state.done(job_id, name) is not None
            if done and now - (state.done_at(job_id, name) or 0.0) < GRACE_SECONDS:
                continue  # just finished: its worker is storing the result and acknowledging it
            if done or stage in TERMINAL or stage is None:
                reason = "a copy of a task with nothing left to do: handed back to be skipped"
            else:
                reason = (f"its worker stopped renewing the lease ({LEASE_SECONDS:.0f} s): "
                          f"the worker died or lost its connection")
            channel.qos.restore_by_tag(tag, client=client)
            chunks = _chunk_ids(message)
            if stage is not None and stage not in TERMINAL:
                state.note_requeue(job_id, name, chunks, reason)
            requeued.append({"task_id": task_id, "chunks": chunks, "reason": reason})
    return requeued


def run(app: Celery, node: str, stop: threading.Event, every: float = SWEEP_SECONDS) -> None:
    """Sweep until ``stop`` is set, whenever this node holds the watchdog turn: lost tasks (Redis
    broker only: RabbitMQ hands a dead consumer's unacknowledged messages back as soon as its
    connection drops or its heartbeat stops, so there the sweep is inert), then stragglers'
    backups (any broker; see backups.py), then finishes Celery's chord lost (rescue.py)."""
    state = JobState.from_url(state_url_of(app))
    redis_broker = uses_redis_broker(app)
    while not stop.wait(every):
        try:
            if state.watchdog_turn(node, ttl=every * 3):
                if redis_broker:
                    sweep(app, state)
                backups.sweep(app, state)
                rescue.sweep(app, state)
        except UNAVAILABLE:
            pass  # Redis is restarting: sweep again once it is back
        except Exception:  # noqa: BLE001 - the watchdog must outlive any one odd message
            import logging

            logging.getLogger(__name__).exception("watchdog sweep failed")


def _chunk_ids(message: dict) -> list[str]:
    """The chunk ids a segenc.encode_chunk message carries (its first argument: the specs)."""
    try:
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        if args and isinstance(args[0], list):
            return [s["chunk_id"] for s in args[0] if isinstance(s, dict) and "chunk_id" in s]
    except (KeyError, ValueError, TypeError, IndexError):
        pass
    return []


def _waiting(eta: str | None, now: float) -> bool:
    if not eta:
        return False
    try:
        t = datetime.fromisoformat(eta)
    except ValueError:
        return False
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp() > now


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
