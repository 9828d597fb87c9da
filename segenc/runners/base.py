"""The Runner seam: who executes the chunk tasks of a plan.

A runner takes a plan (its segments split, or being split, under ``root``) and returns the finished
job: it runs every chord-header task (``encode_chunk``) and then the chord body (``finish``).
``LocalRunner`` uses a process pool on this machine; ``CeleryRunner`` a chord over Redis.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..model import EncodeResult, Plan
from ..progress import Reporter
from ..split import BackgroundSplit


@runtime_checkable
class Runner(Protocol):
    def work_root(self, out_dir: Path) -> Path | None:
        """The storage root jobs must be prepared under, or None for 'anywhere local'."""

    def execute(self, plan: Plan, root: str | os.PathLike, out_dir: Path, report: Reporter,
                inputs: BackgroundSplit | None = None) -> EncodeResult:
        """Run every chunk task of ``plan``, then ``finish`` it into ``out_dir``. ``inputs`` is the
        job's split: still running for a runner whose ``overlaps_split`` is true (a task may start
        once ``inputs.ready(task)``), already finished for any other."""
