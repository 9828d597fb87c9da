"""Live progress over a WebSocket: job snapshots pushed as they change; the page never polls.

Each connection follows the job events channel (``JobState.subscribe``) and sends
``{"type": "job", "job": {...}}`` (at most every 0.2 s per job, stage changes at once),
``{"type": "deleted", "job_id": ...}`` and ``{"type": "workers", "workers": [...]}`` every 2 s.
"""

from __future__ import annotations

import json
import time

from flask import Flask, current_app
from flask_sock import ConnectionClosed, Sock

from .auth import token_ok

JOB_INTERVAL = 0.2
WORKERS_INTERVAL = 2.0


def register_ws(app: Flask) -> None:
    sock = Sock(app)

    @sock.route("/ws")
    def ws(socket):
        if not token_ok(current_app):
            socket.close(reason=1008, message="missing or wrong API token")
            return
        jobs = current_app.extensions["segenc_jobs"]
        sub = jobs.state.subscribe()
        sent: dict[str, float] = {}
        dirty: set[str] = set()
        next_workers = 0.0
        try:
            while socket.connected:
                data = sub.get(timeout=0.1)
                now = time.monotonic()
                if data:
                    ev = json.loads(data)
                    jid = ev["job_id"]
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
                    view = jobs.view(jid)
                    if view:
                        socket.send(json.dumps({"type": "job", "job": view}))
                if now >= next_workers:
                    next_workers = now + WORKERS_INTERVAL
                    socket.send(json.dumps({"type": "workers", "workers": jobs.workers()}))
        except ConnectionClosed:
            pass
        finally:
            sub.close()
