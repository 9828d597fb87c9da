"""gunicorn's gevent worker, which also tells open WebSockets when a graceful stop begins.

Without this, a page left open kept its WebSocket (and so the worker) alive through the whole
graceful timeout, and gunicorn then SIGKILLed the worker and logged "[ERROR] Worker ... was sent
SIGKILL! Perhaps out of memory?" on every clean Ctrl-C. Now each connection closes itself
(1001, going away) within a second, the page reconnects to the restarted server, and the worker
exits on its own.
"""

from __future__ import annotations

from gunicorn.workers.ggevent import GeventWorker


class Worker(GeventWorker):
    def handle_exit(self, sig, frame) -> None:
        from . import ws  # loaded with the app already: a lookup, safe in a signal handler

        ws.stop_all()
        super().handle_exit(sig, frame)
