"""SerialRunner: every task in this process, one after another. For tests and debugging: a
breakpoint or a profiler sees the whole job, and nothing is spawned."""

from __future__ import annotations

import os
from pathlib import Path

from ..model import EncodeResult, Plan
from ..progress import Reporter
from ..split import BackgroundSplit
from ..steps import encode_chunks, finish
from ..stream import publish
from .base import Runner


class SerialRunner(Runner):
    workers = 1
    overlaps_split = True

    def execute(self, plan: Plan, root: str | os.PathLike, out_dir: Path, report: Reporter,
                inputs: BackgroundSplit | None = None) -> EncodeResult:
        results = []
        for group in plan.schedule():  # stream-first order, each once its segment has landed
            while inputs is not None and not inputs.ready(group):
                inputs.wait(0.05)
            results.extend(encode_chunks(group, root, report))
            publish(plan, root, out_dir)
        return finish(plan, results, root, out_dir, report)
