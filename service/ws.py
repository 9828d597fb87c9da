"""Live progress over a WebSocket: job snapshots pushed as they change; the page never polls.

Each connection follows the job events channel (``JobState.subscribe``) and sends
``{"type": "job", "job": {...}}`` (at most every 0.2 s per job, stage changes at once),
``{"type": "deleted", "job_id": ...}`` and ``{"type": "workers", "workers": [...]}`` every 2 s.

Hundreds of connections share one process (gunicorn's gevent worker: one greenlet each, no
request thread held). So each connection sleeps until its next job flush or workers message
(at most IDLE_WAIT, to notice a closed socket), and the connections share the Redis reads: the
workers list is read at most once per WORKERS_INTERVAL/2, a job's view is read once per
event and reused by every connection that got that event before the view was read, and one
subscription to the events channel per process fans the events out to every connection (one
Redis connection, not one per WebSocket). If that subscription breaks (Redis restarting), every
connection is closed, so pages reconnect and resynchronise instead of missing events.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time

from flask import Flask, current_app
from flask_sock import ConnectionClosed, Sock

from .auth import token_ok

JOB_INTERVAL = 0.2
WORKERS_INTERVAL = 2.0
IDLE_WAIT = 1.0


LOST = object()  # put on every connection's queue when the subscription broke
log = logging.getLogger(__name__)
_stopping = False  # the server is stopping: every connection closes within IDLE_WAIT


def stop_all() -> None:
    """Called by the web worker when a graceful stop begins (see web_worker.py)."""
    global _stopping
    _stopping = True


class Fanout:
    """One subscription to the job events for this process, copied to each connection's queue."""

    def __init__(self, state) -> None:
        self.state = state
        self._lock = threading.Lock()
        self._queues: set[queue.Queue] = set()
        self._thread: threading.Thread | None = None
        self._sub = None

    def register(self) -> queue.Queue:
        q: queue.Queue = queue.Queue(maxsize=10000)
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._sub = self.state.subscribe()  # raises here, to this caller, if Redis is down
                self._thread = threading.Thread(target=self._run, args=(self._sub,), daemon=True,
                                                name="segenc-ws-fanout")
                self._thread.start()
            self._queues.add(q)
        return q

    def unregister(self, q: queue.Queue) -> None:
        with self._lock:
            self._queues.discard(q)

    def _run(self, sub) -> None:
        try:
            while True:
                data = sub.get(timeout=1.0)
                if data is None:
                    continue
                with self._lock:
                    targets = list(self._queues)
                for q in targets:
                    try:
                        q.put_nowait(data)
                    except queue.Full:  # a connection that does not keep up: drop it
                        self._lose(q)
        except Exception as exc:  # Redis went away: end every connection (pages reconnect and resync)
            log.warning("segenc: job events subscription lost (%s); closing WebSockets", exc)
            with self._lock:
                targets, self._queues = list(self._queues), set()
                self._thread = None
            for q in targets:
                self._lose(q)
            try:
                sub.close()
            except Exception:
                pass

    @staticmethod
    def _lose(q: queue.Queue) -> None:
        try:
            while True:
                q.get_nowait()
        except queue.Empty:
            pass
        q.put_nowait(LOST)


class SharedReads:
    """Views and the workers list, read once for all connections of this process."""

    def __init__(self, jobs) -> None:
        self.jobs = jobs
        self._lock = threading.Lock()
        self._views: dict[str, tuple[float, dict | None]] = {}
        self._workers: tuple[float, list] = (-1e9, [])

    def view(self, job_id: str, event_seen: float) -> dict | None:
        """The job's view read after ``event_seen`` (when this connection got the job's last event)."""
        hit = self._views.get(job_id)
        if hit and hit[0] >= event_seen:
            return hit[1]
        read_at = time.monotonic()
        view = self.jobs.view(job_id, refresh=True)  # publishes a running job's finished chunks first
        with self._lock:
            if len(self._views) > 1000:
                self._views.clear()
            self._views[job_id] = (read_at, view)
        return view

    def workers(self) -> list:
        t, value = self._workers
        now = time.monotonic()
        if now - t < WORKERS_INTERVAL / 2:
            return value
        value = self.jobs.workers()
        self._workers = (now, value)
        return value


def register_ws(app: Flask) -> None:
    sock = Sock(app)
    shared = SharedReads(app.extensions["segenc_jobs"])
    fanout = Fanout(app.extensions["segenc_jobs"].state)

    @sock.route("/ws")
    def ws(socket):
        if not token_ok(current_app):
            socket.close(reason=1008, message="missing or wrong API token")
            return
        events = fanout.register()
        sent: dict[str, float] = {}
        seen: dict[str, float] = {}
        dirty: set[str] = set()
        next_workers = 0.0
        try:
            while socket.connected:
                if _stopping:
                    socket.close(reason=1001, message="the server is stopping")
                    break
                now = time.monotonic()
                due = [sent.get(j, 0.0) + JOB_INTERVAL for j in dirty] + [next_workers]
                try:
                    data = events.get(timeout=max(0.0, min(IDLE_WAIT, min(due) - now)))
                except queue.Empty:
                    data = None
                if data is LOST:
                    break
                now = time.monotonic()
                if data:
                    ev = json.loads(data)
                    jid = ev["job_id"]
                    seen[jid] = now
                    if ev["kind"] == "deleted":
                        socket.send(json.dumps({"type": "deleted", "job_id": jid}))
                        dirty.discard(jid)
                        continue
                    if ev["kind"] == "stage":
                        sent[jid] = 0.0  # stage changes go out at once
                    dirty.add(jid)
                for jid in [j for j in dirty if now - sent.get(j, 0.0) >= JOB_INTERVAL]:
                    dirty.discard(jid)
                    sent[jid] = now
                    view = shared.view(jid, seen.get(jid, now))
                    if view:
                        socket.send(json.dumps({"type": "job", "job": view}))
                if now >= next_workers:
                    next_workers = now + WORKERS_INTERVAL
                    socket.send(json.dumps({"type": "workers", "workers": shared.workers()}))
        except ConnectionClosed:
            pass
        finally:
            fanout.unregister(events)
