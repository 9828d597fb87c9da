"""Leases: a running task proves it is alive by renewing a short-lived key in Redis.

A task takes its lease before it counts an attempt, renews it every RENEW_SECONDS while it works,
writes its done marker (the result) and only then releases the lease. A task that is neither done
nor leased while its message is still unacknowledged has lost its worker: the watchdog gives it
to another (see watchdog.py). Celery's visibility timeout stays as a backstop only.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from .state import UNAVAILABLE, JobState

LEASE_SECONDS = 8.0
RENEW_SECONDS = 2.0


class Lease:
    def __init__(self, state: JobState, job_id: str, task: str, worker: str | None,
                 ttl: float = LEASE_SECONDS, every: float = RENEW_SECONDS) -> None:
        self.state, self.job_id, self.task = state, job_id, task
        self.ttl, self.every = ttl, every
        self.token = f"{worker or socket.gethostname()}:{os.getpid()}:{os.urandom(6).hex()}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lost = False

    def try_acquire(self) -> bool:
        return self.state.acquire_lease(self.job_id, self.task, self.token, self.ttl)

    def wait_turn(self, timeout: float) -> bool:
        """Take the lease; while another live attempt holds it, wait (up to ``timeout``). Returns
        False if the task got done meanwhile (the caller then returns the stored result)."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if self.state.done(self.job_id, self.task) is not None:
                return False
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {self.task} of job {self.job_id} stayed leased by "
                                   f"{self.state.lease_holder(self.job_id, self.task)}")
            time.sleep(0.5)
        return True

    def __enter__(self) -> "Lease":
        self._thread = threading.Thread(target=self._renew, name=f"lease-{self.task}", daemon=True)
        self._thread.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.every):
            try:
                if not self.state.renew_lease(self.job_id, self.task, self.token, self.ttl):
                    # Lapsed (e.g. Redis restarted without it): take it again if nobody else did.
                    self.lost = not self.try_acquire()
            except UNAVAILABLE:
                pass  # Redis is restarting; renew at the next beat

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.every + 1)
        try:
            self.state.release_lease(self.job_id, self.task, self.token)
        except UNAVAILABLE:
            pass  # it expires on its own

    def __exit__(self, *exc_info) -> None:
        self.release()
