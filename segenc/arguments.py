"""Checks of the arguments callers pass to the Python API, each failing with a UsageError that
names the argument and what it takes (never a bare ValueError or TypeError from deep inside)."""

from __future__ import annotations

import os
import threading
from typing import Any, Callable

from .errors import UsageError
from .model import RUNG_SYNTAX, parse_ladder


def check_workers(workers: Any) -> int | None:
    """``workers``: None (one per core) or a whole number >= 1."""
    if workers is None:
        return None
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UsageError(f"workers: {workers!r} is not allowed; workers is a whole number >= 1 "
                         f"(or None: one per core)")
    return workers


def check_ladder(ladder: Any) -> tuple[str, ...]:
    """A ladder as a comma-separated string (``"720p"``, ``"480p,720p@2800k"``) or a sequence of
    rungs -> its rung specs, lowest first."""
    if isinstance(ladder, (bytes, os.PathLike)) or not isinstance(ladder, (str, list, tuple)):
        raise UsageError(f"ladder: {ladder!r} is not allowed; the ladder is a string such as '480p,720p' "
                         f"or a list of rungs such as ['480p', '720p']")
    if not isinstance(ladder, str) and not all(isinstance(r, str) for r in ladder):
        raise UsageError(f"ladder: {list(ladder)!r} is not allowed; every rung is a string, {RUNG_SYNTAX}")
    try:
        return tuple(r.spec() for r in parse_ladder(ladder))
    except ValueError as exc:
        raise UsageError(f"ladder: {exc}") from None


def check_chunk_seconds(chunk_seconds: Any) -> float | None:
    """``chunk_seconds``: None (automatic) or a number of seconds from 0.5 to 600."""
    if chunk_seconds is None:
        return None
    if isinstance(chunk_seconds, bool) or not isinstance(chunk_seconds, (int, float)) \
            or not 0.5 <= chunk_seconds <= 600:
        raise UsageError(f"chunk_seconds: {chunk_seconds!r} is not allowed; chunk_seconds is a number of "
                         f"seconds from 0.5 to 600 (or None: automatic)")
    return float(chunk_seconds)


def check_callable(name: str, value: Any) -> Callable | None:
    if value is not None and not callable(value):
        raise UsageError(f"{name}: {value!r} is not callable; {name} takes a function of one ProgressEvent")
    return value


def check_cancel(cancel: Any) -> threading.Event | None:
    """``cancel``: None or an object with ``is_set()`` (a ``threading.Event``)."""
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise UsageError(f"cancel: {cancel!r} is not allowed; cancel is a threading.Event (set it to stop)")
    return cancel


def check_instance(name: str, value: Any, kind: type) -> Any:
    if value is not None and not isinstance(value, kind):
        raise UsageError(f"{name}: {value!r} is not a {kind.__module__}.{kind.__qualname__}")
    return value
