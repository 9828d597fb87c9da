"""The Celery app segenc's tasks run in, and its result backend.

Reliability: late acks + reject on worker loss + prefetch 1 re-run a chunk whose worker died; an
attempt counter in Redis caps re-runs; the visibility timeout exceeds the hard time limit so long
chunks are never handed out twice while they run; the result backend retries through a Redis
restart. Stock Celery's pub/sub result consumer is replaced by polling (see PollingRedisBackend).
Fairness: the broker serves priorities 0..9 (lower first) across all queues a worker reads; a
job's chunks get a priority from its length, so a short job queued behind long ones goes first.
"""

from __future__ import annotations

import os

from celery import Celery
from celery.backends.base import SyncBackendMixin
from celery.backends.redis import RedisBackend

MAX_ATTEMPTS = 3
MAIN_QUEUE = "segenc.main"  # prepare and finish: workers that hold the main instance's storage
DEFAULT_QUEUE = "celery"  # chunks: any worker


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
             cluster_secret: str | None = None, worker_name: str | None = None) -> Celery:
    """A Celery app wired for segenc. ``root`` is this process's storage root (workers need it);
    ``worker_name`` names this node in progress events and its transfer cache."""
    # "module:Class+redis://..." selects our backend class for the same Redis URL.
    app = Celery("segenc", broker=broker_url, backend=f"{__name__}:PollingRedisBackend+{broker_url}",
                 set_as_current=False, include=["segenc.distributed.tasks"])
    vt = visibility_timeout or int(task_time_limit * 1.25) + 60
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_time_limit=task_time_limit, task_soft_time_limit=max(1, task_time_limit - 30),
        # Priorities (0 first): see tasks.chunk_priority. kombu keeps one Redis list per step.
        broker_transport_options={"visibility_timeout": vt, "queue_order_strategy": "priority",
                                  "priority_steps": list(range(10))},
        task_default_priority=0,
        result_backend_transport_options={"visibility_timeout": vt},
        result_backend_always_retry=True, result_backend_max_retries=20,
        broker_connection_retry_on_startup=True,
        result_expires=7 * 86400, task_track_started=True,
        worker_hijack_root_logger=False,
        segenc_root=str(root) if root else None, segenc_max_attempts=max_attempts,
        segenc_cluster_secret=cluster_secret, segenc_worker_name=worker_name,
    )
    return app
