"""The pipeline: probe -> plan -> split -> encode (N chunks, in parallel) -> concat -> package.

Three entry points line up with a Celery chord: ``prepare`` (probe, plan, split), ``encode_chunk``
(the chord header: one task per segment x rendition, plus the audio track) and ``finish`` (concat
and package: the chord body). ``encode`` chains them through a Runner.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from .audio import encode_audio
from .concat import concat
from .encode import encode_video_chunks
from .errors import IntegrityError
from .model import DEFAULT_LADDER, ChunkResult, ChunkSpec, EncodeResult, Plan
from .plan import plan as make_plan
from .probe import probe
from .progress import ProgressEvent, Reporter, null_reporter, plan_totals
from .settings import Settings
from .split import BackgroundSplit, split
from .storage import atomic_path, resolve, temp_name

PLAN_FILE = "plan.json"
TIMINGS_FILE = "timings.json"


def plan_job(source: str | os.PathLike, root: str | os.PathLike, *, job_id: str | None = None,
             ladder=DEFAULT_LADDER, settings: Settings | None = None, workdir: str | None = None,
             report: Reporter = null_reporter, workers: int | None = None) -> Plan:
    """Probe and plan ``source``; ``plan.json`` lands under ``root/workdir``. Nothing is split yet.

    ``workers`` is how many encoder processes will share the job (sizes an automatic chunk length)."""
    settings = settings or Settings()
    job_id = job_id or str(uuid.uuid4())
    workdir = workdir or f"work/{job_id}"
    t = time.perf_counter()
    report(ProgressEvent(job_id, "stage", stage="probing"))
    info = probe(source, settings.limits)
    t_probe = time.perf_counter()
    plan = make_plan(info, ladder, settings, job_id=job_id, workdir=workdir, workers=workers)
    t_plan = time.perf_counter()
    report(ProgressEvent(job_id, "planned", totals=plan_totals(plan)))
    save_plan(plan, root)
    _save_timings(root, plan, {"probe": t_probe - t, "plan": t_plan - t_probe})
    return plan


def prepare(source: str | os.PathLike, root: str | os.PathLike, *, report: Reporter = null_reporter,
            **kwargs) -> Plan:
    """Probe, plan and split ``source`` (``plan_job`` arguments); segments land under ``root/workdir``."""
    plan = plan_job(source, root, report=report, **kwargs)
    report(ProgressEvent(plan.job_id, "stage", stage="splitting"))
    t = time.perf_counter()
    split(source, plan, root)
    _save_timings(root, plan, {**_load_timings(root, plan), "split": time.perf_counter() - t})
    return plan


def encode_chunks(specs, root: str | os.PathLike, report: Reporter = null_reporter) -> list[ChunkResult]:
    """One chord-header task: a segment's renditions (decoded once), or the audio track."""
    specs = list(specs)
    if specs[0].kind == "audio":
        return [encode_audio(s, root, report) for s in specs]
    return encode_video_chunks(specs, root, report)


def encode_chunk(spec: ChunkSpec, root: str | os.PathLike, report: Reporter = null_reporter) -> ChunkResult:
    """One segment x rendition, or the audio track."""
    return encode_chunks([spec], root, report)[0]


def concat_rendition(plan: Plan, name: str, root: str | os.PathLike, out: Path) -> dict:
    """Stitch one rendition's chunks (+ the audio track) into ``out``; returns its stream facts."""
    return concat(plan.chunks_of(name), root, out, plan.audio.output if plan.audio else None)


def finish(plan: Plan, results: list[ChunkResult], root: str | os.PathLike, out_dir: str | os.PathLike,
           report: Reporter = null_reporter, concatenated: dict[str, tuple[Path, dict]] | None = None
           ) -> EncodeResult:
    """The chord body: check every chunk, concat each rendition, package atomically.

    ``concatenated`` holds renditions a runner already stitched (staged path, facts). The caller
    announces ``done`` once it has recorded the result (so followers see the outputs)."""
    out_dir = Path(out_dir)
    report(ProgressEvent(plan.job_id, "stage", stage="concatenating"))
    t = time.perf_counter()
    by_id = {r.chunk_id: r for r in results}
    for spec in plan.specs():
        r = by_id.get(spec.chunk_id)
        if r is None:
            raise IntegrityError(f"chunk {spec.chunk_id} has no result; refusing to concat partial results")
        if spec.kind == "video" and r.frames != spec.frames:
            raise IntegrityError(f"chunk {spec.chunk_id} has {r.frames} frames, expected {spec.frames}")
        if not resolve(root, spec.output).exists():
            raise IntegrityError(f"chunk {spec.chunk_id}: {spec.output} is missing")
    out_dir.mkdir(parents=True, exist_ok=True)
    staged = {name: path for name, (path, _) in (concatenated or {}).items()}
    facts = {name: f for name, (_, f) in (concatenated or {}).items()}
    try:
        for r in plan.renditions:
            if r.name not in facts:
                staged[r.name] = temp_name(out_dir / f"{r.name}.mp4")
                facts[r.name] = concat_rendition(plan, r.name, root, staged[r.name])
        timings = _load_timings(root, plan)
        timings["concat"] = time.perf_counter() - t
        result = _package(plan, out_dir, facts, staged, timings)
    finally:
        for p in staged.values():
            if p.exists():
                p.unlink()
    return result


def encode(source: str | os.PathLike, out_dir: str | os.PathLike, ladder=DEFAULT_LADDER, *,
           chunk_seconds: float | None = None, workers: int | None = None, on_progress: Reporter | None = None,
           settings: Settings | None = None, runner=None) -> EncodeResult:
    """Encode ``source`` to an H.264 ladder in ``out_dir`` (``<quality>.mp4`` + ``manifest.json``)."""
    from .runners.local import LocalRunner

    t = time.perf_counter()
    settings = (settings or Settings()).with_(chunk_seconds=chunk_seconds)
    runner = runner or LocalRunner(workers)
    report = on_progress or null_reporter
    out_dir = Path(out_dir).absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    root = runner.work_root(out_dir)
    job_id = str(uuid.uuid4())
    if root is None:
        root = Path(tempfile.mkdtemp(prefix=".segenc-", dir=out_dir.parent))
        workdir = "job"
    else:
        workdir = f"work/{job_id}"
    split_job: BackgroundSplit | None = None
    getattr(runner, "start", lambda: None)()
    try:
        try:
            plan = plan_job(source, root, job_id=job_id, ladder=tuple(ladder), settings=settings,
                            workdir=workdir, report=report, workers=getattr(runner, "workers", None))
            report(ProgressEvent(plan.job_id, "stage", stage="splitting"))
            t_run = time.perf_counter()
            span = _EncodeSpan(report)
            split_job = BackgroundSplit(source, plan, root).start()  # encoding starts as segments land
            if not getattr(runner, "overlaps_split", False):
                split_job.join()
            report(ProgressEvent(plan.job_id, "stage", stage="encoding"))
            result = runner.execute(plan, root, out_dir, span, inputs=split_job)
            result.timings["split"] = split_job.seconds
            result.timings["encode"] = time.perf_counter() - t_run - result.timings.get("concat", 0.0)
            result.timings["serial"] = span.serial()
            report(ProgressEvent(plan.job_id, "stage", stage="done"))
        except Exception as exc:
            report(ProgressEvent(job_id, "stage", stage="failed", message=str(exc)))
            raise
        result.timings["total"] = time.perf_counter() - t
        return result
    finally:
        if split_job is not None:
            split_job.cancel()
        getattr(runner, "close", lambda: None)()
        shutil.rmtree(resolve(root, workdir), ignore_errors=True)
        if workdir == "job":
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


def save_plan(plan: Plan, root: str | os.PathLike) -> Path:
    path = resolve(root, f"{plan.workdir}/{PLAN_FILE}")
    with atomic_path(path) as tmp:
        tmp.write_text(plan.to_json())
    return path


def load_plan(root: str | os.PathLike, workdir: str) -> Plan:
    return Plan.from_json(resolve(root, f"{workdir}/{PLAN_FILE}").read_text())


def _save_timings(root, plan: Plan, timings: dict) -> None:
    resolve(root, f"{plan.workdir}/{TIMINGS_FILE}").write_text(json.dumps(timings))


def _load_timings(root, plan: Plan) -> dict:
    try:
        return json.loads(resolve(root, f"{plan.workdir}/{TIMINGS_FILE}").read_text())
    except (OSError, ValueError):
        return {}


def _package(plan, out_dir, facts, staged, timings):
    from .package import package

    return package(plan, out_dir, facts, staged, timings)
