"""Uploads in flight: at most a few per client address, each dropped when it stalls.

The web server runs one process (gunicorn, one worker), so an in-process count is the whole count."""

from __future__ import annotations

import threading
from collections import Counter


class UploadSlots:
    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._lock = threading.Lock()
        self._held: Counter[str] = Counter()

    def acquire(self, client: str) -> bool:
        with self._lock:
            if self._held[client] >= self.per_client:
                return False
            self._held[client] += 1
            return True

    def release(self, client: str) -> None:
        with self._lock:
            self._held[client] -= 1
            if self._held[client] <= 0:
                del self._held[client]
