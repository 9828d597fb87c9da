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
from celery.backends.redis import RedisBackend, SentinelBackend

from . import brokers

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


class PollingSentinelBackend(SyncBackendMixin, SentinelBackend):
    """The same, for a state Redis reached through Sentinel."""

    def on_task_call(self, producer, task_id):
        pass


# AMQP: a heartbeat every HEARTBEAT s (a dead TCP peer is noticed in about twice that; the worker's
# unacked messages then go back to the queue at once). RabbitMQ's own consumer_timeout (30 min by
# default) must exceed the longest task, or the broker closes the channel of a worker encoding a
# long chunk: set it on the server (rabbitmq.conf: consumer_timeout = rabbitmq_consumer_timeout_ms()).
AMQP_HEARTBEAT = 30
PRIORITIES = 10  # 0..9; segenc's own numbers are "0 first" on every broker (see priority())


def make_app(broker_url: str, *, state_url: str | None = None, root: str | os.PathLike | None = None,
             task_time_limit: int = 3600, visibility_timeout: int | None = None, max_attempts: int = MAX_ATTEMPTS,
             cluster_secret: str | None = None, worker_name: str | None = None) -> Celery:
    """A Celery app wired for segenc. ``broker_url`` carries the task messages (Redis or RabbitMQ);
    ``state_url`` is the Redis for results and segenc's state (default: the broker, if it is a
    Redis; see brokers.py). ``root`` is this process's storage root (workers need it);
    ``worker_name`` names this node in progress events and its transfer cache."""
    brokers.check_broker(broker_url)
    state = brokers.state_url(broker_url, state_url)
    broker, broker_options = brokers.celery_url(broker_url)
    backend, backend_options = brokers.celery_url(state)
    cls = "PollingSentinelBackend" if brokers.scheme(state) == "sentinel" else "PollingRedisBackend"
    # "module:Class+redis://..." selects our backend class for that URL.
    app = Celery("segenc", broker=broker, backend=f"{__name__}:{cls}+{backend}",
                 set_as_current=False, include=["segenc.distributed.tasks"])
    vt = visibility_timeout or visibility_for(task_time_limit)
    if brokers.is_amqp(broker_url):
        # Per-queue priorities (x-max-priority); the broker notices dead peers by heartbeat.
        transport = {"confirm_publish": True}
        extra = {"broker_heartbeat": AMQP_HEARTBEAT, "task_queue_max_priority": PRIORITIES - 1,
                 "task_default_priority": priority_on(broker_url, 0)}
    else:
        # Priorities (0 first): see tasks.chunk_priority. kombu keeps one Redis list per step.
        transport = {"visibility_timeout": vt, "queue_order_strategy": "priority",
                     "priority_steps": list(range(PRIORITIES)), **broker_options}
        extra = {"task_default_priority": 0}
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"], result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_time_limit=task_time_limit, task_soft_time_limit=max(1, task_time_limit - 30),
        broker_transport_options=transport,
        result_backend_transport_options={"visibility_timeout": vt, **backend_options},
        result_backend_always_retry=True, result_backend_max_retries=20,
        broker_connection_retry_on_startup=True,
        result_expires=7 * 86400, task_track_started=True,
        worker_hijack_root_logger=False,
        segenc_root=str(root) if root else None, segenc_max_attempts=max_attempts,
        segenc_cluster_secret=cluster_secret, segenc_worker_name=worker_name,
        segenc_broker_url=broker_url, segenc_state_url=state,
        **extra,
    )
    return app


def visibility_for(task_time_limit: int) -> int:
    """Redis broker: seconds before an unacknowledged message is handed out again (longer than
    the longest task, so a long chunk never runs twice at once)."""
    return int(task_time_limit * 1.25) + 60


def rabbitmq_consumer_timeout_ms(task_time_limit: int = 3600) -> int:
    """The ``consumer_timeout`` a RabbitMQ broker needs for tasks up to ``task_time_limit``."""
    return visibility_for(task_time_limit) * 1000


def state_url_of(app: Celery) -> str:
    """The Redis holding this app's segenc state (job state, events, leases, heartbeats)."""
    return app.conf.segenc_state_url or brokers.state_url(app.conf.broker_url)


def uses_redis_broker(app: Celery) -> bool:
    return brokers.is_redis(app.conf.segenc_broker_url or app.conf.broker_url)


def priority_on(broker_url: str, p: int) -> int:
    """segenc's priority ``p`` (0 first) as the broker spells it: kombu's Redis transport serves
    0 first, RabbitMQ serves the highest number first."""
    return PRIORITIES - 1 - p if brokers.is_amqp(broker_url) else p


def priority(app: Celery, p: int) -> int:
    return priority_on(app.conf.segenc_broker_url or app.conf.broker_url, p)
