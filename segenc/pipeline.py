"""``encode()``: one call from a source file to a finished ladder, through a Runner.

    probe -> plan -> split -> encode (the plan's tasks, in parallel) -> concat -> package

The source is hard-linked into the job's work dir; in a container that seeks by its index the
tasks then read their segments straight from it and nothing is split (see segenc.split).

The steps themselves live in ``steps`` (shaped like a Celery chord); this module only orders
them, measures them and cleans up.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import tempfile
import time
import uuid
from pathlib import Path
from typing import Sequence

from . import layout
from .arguments import check_callable, check_cancel, check_chunk_seconds, check_instance, check_ladder, check_workers
from .errors import JobCancelled
from .model import DEFAULT_LADDER, EncodeResult, parse_ladder
from .package import update_timings
from .progress import ProgressEvent, Reporter, null_reporter
from .runners.base import Runner
from .runners.local import LocalRunner
from .settings import Settings
from .split import BackgroundSplit, copy_side_tracks
from .stages import Stage
from .steps import plan_job
from .storage import resolve

PRIVATE_WORKDIR = "job"  # the work dir inside encode()'s own temp root


def encode(source: str | os.PathLike, out_dir: str | os.PathLike, ladder: str | Sequence[str] = DEFAULT_LADDER, *,
           chunk_seconds: float | None = None, workers: int | None = None, on_progress: Reporter | None = None,
           settings: Settings | None = None, runner: Runner | None = None,
           cancel: threading.Event | None = None) -> EncodeResult:
    """Encode ``source`` to a ladder in ``out_dir``: ``<rung>.mp4`` for each rung the source's
    height reaches, plus ``manifest.json``. Safe to call from a plain script without a
    ``__main__`` guard, from ``python -`` and from a notebook. Whatever fails, no temp folder and
    no half-written output is left behind.

    Args:
        source: the input video file.
        out_dir: the output directory (created, with its parents, if missing).
        ladder: the rungs, as a comma-separated string (``"720p"``, ``"480p,720p@2800k"``) or a
            sequence of rung strings; rungs above the source's height are skipped.
        chunk_seconds: target segment length in seconds (0.5-600); None picks one for the workers.
        workers: local encoder processes (>= 1); None: one per core. Ignored with ``runner``.
        on_progress: called with each ``ProgressEvent`` (stages, frames done, planned totals).
        settings: codec, quality, GOP, audio and limits (``Settings()`` if None).
        runner: who runs the chunk tasks; None: a ``LocalRunner(workers)``.
        cancel: a ``threading.Event``; set it (from another thread, or ``on_progress``) to stop
            the encode, which then raises ``JobCancelled``.

    Returns:
        EncodeResult: the renditions (paths, sizes, frames), the manifest path and timings.

    Raises:
        UsageError: an argument is invalid (unknown rung, ``workers < 1``, ...).
        InputError: the source is at fault (not a video, unsupported, corrupt, over a limit).
        EncodeError: a chunk, the audio or the concat failed (StorageFullError: disk full).
        JobCancelled: ``cancel`` was set.
        JobFailed: a distributed job failed.
    """
    t = time.perf_counter()
    ladder = check_ladder(ladder)
    chunk_seconds = check_chunk_seconds(chunk_seconds)
    workers = check_workers(workers)
    report = check_callable("on_progress", on_progress) or null_reporter
    cancel = check_cancel(cancel)
    settings = (check_instance("settings", settings, Settings) or Settings()).with_(chunk_seconds=chunk_seconds)
    runner = check_instance("runner", runner, Runner) or LocalRunner(workers)
    runner.cancel = cancel
    out_dir = Path(out_dir).absolute()
    job_id = str(uuid.uuid4())
    root = runner.work_root(out_dir)
    private = root is None
    workdir = PRIVATE_WORKDIR if private else layout.work_dir(job_id)
    split_job: BackgroundSplit | None = None
    started = False  # the stream may have begun: a failure removes what it published
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        if private:
            root = Path(tempfile.mkdtemp(prefix=".segenc-", dir=out_dir.parent))
        with runner:
            try:
                span = _EncodeSpan(report, cancel)
                plan = plan_job(source, root, job_id=job_id, ladder=ladder, settings=settings,
                                workdir=workdir, report=span, workers=runner.workers,
                                readable=_link_source(source, root, workdir))
                t_run = time.perf_counter()
                started = True
                if plan.source is None:  # no index to seek by (or no link): split, overlapping the encode
                    span(ProgressEvent(plan.job_id, "stage", stage=Stage.SPLITTING))
                    split_job = BackgroundSplit(source, plan, root).start()  # encoding starts as segments land
                    if not runner.overlaps_split:
                        split_job.join()
                elif plan.subtitles_source:  # the tasks read the source: only its subtitles are copied
                    copy_side_tracks(source, plan, root, audio=False, subtitles=True)
                span(ProgressEvent(plan.job_id, "stage", stage=Stage.ENCODING))
                result = runner.execute(plan, root, out_dir, span, inputs=split_job)
                span.check()
                result.timings["split"] = split_job.seconds if split_job else 0.0
                result.timings["encode"] = time.perf_counter() - t_run - result.timings.get("concat", 0.0)
                result.timings["serial"] = span.serial()
                result.timings["total"] = time.perf_counter() - t
                update_timings(result.manifest, result.timings)
                report(ProgressEvent(plan.job_id, "stage", stage=Stage.DONE))
            except BaseException as exc:
                if isinstance(exc, JobCancelled):
                    _remove_outputs(out_dir, ladder)
                elif started:
                    _remove_stream(out_dir)  # its EVENT playlists would never end: no half stream stays
                report(ProgressEvent(job_id, "stage", stage=Stage.CANCELLED if isinstance(exc, JobCancelled)
                                     else Stage.FAILED, message=str(exc) or type(exc).__name__))
                raise
            finally:
                if split_job is not None:
                    split_job.cancel()
        return result
    finally:
        if root is not None:
            shutil.rmtree(resolve(root, workdir), ignore_errors=True)
            if private:
                shutil.rmtree(root, ignore_errors=True)


def _link_source(source, root: Path, workdir: str) -> str | None:
    """``source`` hard-linked into the job's work dir, so that the tasks read their segments (and
    audio) straight from it as they do an upload's: its root-relative path, or None where no link
    can be made (another file system, no permission, not a file): then it is split."""
    rel = layout.linked_source(workdir, Path(source).suffix)
    try:
        link = resolve(root, rel)
        link.parent.mkdir(parents=True, exist_ok=True)
        os.link(os.path.realpath(source), link)  # the file itself: a link to a symlink would point outside
    except (OSError, ValueError):
        return None
    return rel


def _remove_outputs(out_dir: Path, ladder: tuple[str, ...]) -> None:
    """A cancelled encode keeps nothing: renditions already packaged and the manifest go."""
    for name in [layout.output_name(r.name) for r in parse_ladder(ladder)] + [layout.MANIFEST_FILE]:
        (out_dir / name).unlink(missing_ok=True)
    _remove_stream(out_dir)
    with contextlib.suppress(OSError):
        out_dir.rmdir()  # only if it is empty now


def _remove_stream(out_dir: Path) -> None:
    """The stream published so far: the master, the MPD, and every track folder that holds only
    stream files (a folder with anything else in it is not ours and stays)."""
    for name in (layout.MASTER_PLAYLIST, layout.DASH_MANIFEST):
        (out_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        for d in out_dir.iterdir():
            if d.is_dir() and re.fullmatch(layout.TRACK_NAME, d.name) and \
                    all(layout.stream_file(f"{d.name}/{f.name}") for f in d.iterdir()):
                shutil.rmtree(d, ignore_errors=True)


class _EncodeSpan:
    """Passes progress on and notes when the first task started and the last one ended, to tell
    the serial part of the wall time (nothing encoding: split lead-in, concat tail) from the rest."""

    def __init__(self, report: Reporter, cancel: threading.Event | None = None) -> None:
        self.report = report
        self.cancel = cancel
        self.began = time.time()  # event times are wall clock too
        self.first: float | None = None
        self.last: float | None = None

    def __call__(self, ev: ProgressEvent) -> None:
        if ev.kind == "chunk_started":
            self.first = min(self.first or ev.time, ev.time)
        elif ev.kind == "chunk_done":
            self.last = max(self.last or ev.time, ev.time)
        self.report(ev)
        self.check()

    def check(self) -> None:
        """Raise JobCancelled once ``cancel`` is set (every event passes here, in every runner)."""
        if self.cancel is not None and self.cancel.is_set():
            raise JobCancelled("the encode was cancelled")

    def serial(self) -> float | None:
        """Seconds from the start to the first task, plus from the last task's end to now."""
        if self.first is None or self.last is None:
            return None
        return max(0.0, self.first - self.began) + max(0.0, time.time() - self.last)
