"""The Runner seam: who executes the tasks of a plan.

A runner takes a plan (its segments split, or being split, under ``root``) and returns the finished
job: it runs every chord-header task (``steps.encode_chunks`` for each of ``Plan.tasks``) and then
the chord body (``steps.finish``). ``encode()`` uses a runner as a context manager::

    with runner:                      # start(): pools, connections
        root = runner.work_root(out)  # None: a private temp folder
        ... plan for runner.workers, split (overlapping the encode if runner.overlaps_split) ...
        result = runner.execute(plan, root, out, report, inputs=split)

``LocalRunner`` uses a process pool on this machine, ``SerialRunner`` this very process (tests,
debugging), ``segenc.distributed.CeleryRunner`` a chord over Redis.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from ..model import EncodeResult, Plan
from ..progress import Reporter
from ..split import BackgroundSplit


class Runner:
    #: Encoder processes that will share the job (sizes the chunk length, balances the tasks).
    workers: int | None = None
    #: True if ``execute`` may start tasks while the split is still running.
    overlaps_split: bool = False
    #: Set by ``encode(cancel=...)``: a runner that polls should stop (raising JobCancelled) once set.
    cancel: threading.Event | None = None

    def work_root(self, out_dir: Path) -> Path | None:
        """The storage root jobs must be prepared under, or None for 'anywhere local'."""
        return None

    def start(self) -> None:
        """Acquire what execute() needs (called early, so it warms up while the job is planned)."""

    def close(self) -> None:
        """Release it again; safe to call twice."""

    def __enter__(self) -> "Runner":
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def execute(self, plan: Plan, root: str | os.PathLike, out_dir: Path, report: Reporter,
                inputs: BackgroundSplit | None = None) -> EncodeResult:
        """Run every task of ``plan``, then ``finish`` it into ``out_dir``. ``inputs`` is the job's
        split: still running for a runner whose ``overlaps_split`` is true (a task may start once
        ``inputs.ready(task)``), already finished for any other."""
        raise NotImplementedError
