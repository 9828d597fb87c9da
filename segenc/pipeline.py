"""``encode()``: one call from a source file to a finished ladder, through a Runner.

    probe -> plan -> split -> encode (the plan's tasks, in parallel) -> concat -> package

The steps themselves live in ``steps`` (shaped like a Celery chord); this module only orders
them, measures them and cleans up.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from . import layout
from .model import DEFAULT_LADDER, EncodeResult
from .package import update_timings
from .progress import ProgressEvent, Reporter, null_reporter
from .runners.base import Runner
from .runners.local import LocalRunner
from .settings import Settings
from .split import BackgroundSplit
from .stages import Stage
from .steps import plan_job
from .storage import resolve

PRIVATE_WORKDIR = "job"  # the work dir inside encode()'s own temp root


def encode(source: str | os.PathLike, out_dir: str | os.PathLike, ladder=DEFAULT_LADDER, *,
           chunk_seconds: float | None = None, workers: int | None = None, on_progress: Reporter | None = None,
           settings: Settings | None = None, runner: Runner | None = None) -> EncodeResult:
    """Encode ``source`` to an H.264 ladder in ``out_dir`` (``<quality>.mp4`` + ``manifest.json``)."""
    t = time.perf_counter()
    settings = (settings or Settings()).with_(chunk_seconds=chunk_seconds)
    runner = runner or LocalRunner(workers)
    report = on_progress or null_reporter
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    job_id = str(uuid.uuid4())
    root = runner.work_root(out_dir)
    private = root is None
    if private:
        root = Path(tempfile.mkdtemp(prefix=".segenc-", dir=out_dir.parent))
    workdir = PRIVATE_WORKDIR if private else layout.work_dir(job_id)
    split_job: BackgroundSplit | None = None
    try:
        with runner:
            try:
                plan = plan_job(source, root, job_id=job_id, ladder=tuple(ladder), settings=settings,
                                workdir=workdir, report=report, workers=runner.workers)
                report(ProgressEvent(plan.job_id, "stage", stage=Stage.SPLITTING))
                t_run = time.perf_counter()
                span = _EncodeSpan(report)
                split_job = BackgroundSplit(source, plan, root).start()  # encoding starts as segments land
                if not runner.overlaps_split:
                    split_job.join()
                report(ProgressEvent(plan.job_id, "stage", stage=Stage.ENCODING))
                result = runner.execute(plan, root, out_dir, span, inputs=split_job)
                result.timings["split"] = split_job.seconds
                result.timings["encode"] = time.perf_counter() - t_run - result.timings.get("concat", 0.0)
                result.timings["serial"] = span.serial()
                result.timings["total"] = time.perf_counter() - t
                update_timings(result.manifest, result.timings)
                report(ProgressEvent(plan.job_id, "stage", stage=Stage.DONE))
            except Exception as exc:
                report(ProgressEvent(job_id, "stage", stage=Stage.FAILED, message=str(exc)))
                raise
            finally:
                if split_job is not None:
                    split_job.cancel()
        return result
    finally:
        shutil.rmtree(resolve(root, workdir), ignore_errors=True)
        if private:
            shutil.rmtree(root, ignore_errors=True)


class _EncodeSpan:
    """Passes progress on and notes when the first task started and the last one ended, to tell
    the serial part of the wall time (nothing encoding: split lead-in, concat tail) from the rest."""

    def __init__(self, report: Reporter) -> None:
        self.report = report
        self.began = time.time()  # event times are wall clock too
        self.first: float | None = None
        self.last: float | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.kind == "chunk_started":
            self.first = min(self.first or ev.time, ev.time)
        elif ev.kind == "chunk_done":
            self.last = max(self.last or ev.time, ev.time)
        self.report(ev)

    def serial(self) -> float | None:
        """Seconds from the start to the first task, plus from the last task's end to now."""
        if self.first is None or self.last is None:
            return None
        return max(0.0, self.first - self.began) + max(0.0, time.time() - self.last)
