"""A worker node: a Celery worker that advertises itself with heartbeats in Redis and runs a
watchdog thread (one sweeps at a time across the cluster; see watchdog.py)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from celery import Celery

from . import tasks as _tasks  # noqa: F401  (registers the tasks with every app before the pool forks)
from . import watchdog
from .app import DEFAULT_QUEUE, state_url_of
from .remote import remote_root, sweep_remote
from .state import JobState

HEARTBEAT_SECONDS = 5.0


def heartbeat(app: Celery, name: str, concurrency: int, stop: threading.Event,
              every: float = HEARTBEAT_SECONDS) -> None:
    """Advertise this worker node in Redis (expires if the node dies) until ``stop`` is set."""
    state = JobState.from_url(state_url_of(app))
    root = Path(app.conf.segenc_root) if app.conf.segenc_root else None
    if root is not None:
        shutil.rmtree(remote_root(root, name), ignore_errors=True)  # a dead predecessor's copies
    while not stop.is_set():
        try:
            if root is not None:
                sweep_remote(root, name, state)
            state.beat(name, every * 6, concurrency=concurrency, node=f"{name}@{os.uname().nodename}",
                       pid=os.getpid())
        except Exception:  # Redis away for a moment: the next beat will tell
            pass
        stop.wait(every)
    try:
        state.forget_worker(name)
    except Exception:
        pass


def run_worker(app: Celery, name: str, concurrency: int | None = None, loglevel: str = "INFO",
               queues: tuple[str, ...] = (DEFAULT_QUEUE,), pool: str = "prefork") -> None:
    """Start a Celery worker node called ``name`` (blocks), advertising itself with heartbeats.
    Progress events name the node: pass the same ``worker_name`` to ``make_app``. ``pool``:
    prefork (encoders are CPU-bound); the scale rehearsal runs many sleeping slots as threads."""
    app.conf.segenc_worker_name = app.conf.segenc_worker_name or name
    concurrency = concurrency or os.cpu_count() or 1
    stop = threading.Event()
    threads = [threading.Thread(target=heartbeat, args=(app, name, concurrency, stop), daemon=True),
               threading.Thread(target=watchdog.run, args=(app, name, stop), daemon=True)]
    for t in threads:
        t.start()
    try:
        _worker_main(app, name, concurrency, loglevel, queues, pool)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=2)


def _worker_main(app: Celery, name: str, concurrency: int, loglevel: str, queues: tuple[str, ...],
                 pool: str = "prefork") -> None:
    argv = ["worker", f"--hostname={name}@%h" if "@" not in name else f"--hostname={name}",
            f"--concurrency={concurrency}", f"--pool={pool}", f"--loglevel={loglevel}",
            "--without-gossip", "--without-mingle", f"--queues={','.join(queues)}"]
    app.worker_main(argv)
