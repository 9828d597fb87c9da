"""The chord-shaped steps of a job, each a plain function any runner can call.

    prepare (probe, plan, split)  ->  encode_chunks x tasks (+ the audio track)  ->  finish (concat, package)

While the tasks run, whoever collects their results (one process per job) calls
``stream.publish`` to put the finished prefix of every rung on the HLS playlists; ``finish``
publishes the rest and makes the stream VOD.

``prepare`` is the head, ``encode_chunks`` one chord-header task (``Plan.tasks``), ``finish`` the
chord body. Nothing here knows who runs them: ``pipeline.encode`` chains them through a Runner, the
distributed tasks through Celery.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

from . import audio, layout
from .concat import concat
from .errors import IntegrityError, StorageError
from .model import DEFAULT_LADDER, ChunkResult, ChunkSpec, EncodeResult, MediaInfo, Plan
from .package import package
from .plan import plan as make_plan
from .probe import probe
from .progress import ProgressEvent, Reporter, null_reporter, plan_totals
from .settings import Settings
from .split import copy_side_tracks, split
from .stages import Stage
from .storage import atomic_path, relative, resolve, temp_name
from .stream import publish
from .video import encode_video_chunks


def plan_job(source: str | os.PathLike, root: str | os.PathLike, *, job_id: str | None = None,
             ladder=DEFAULT_LADDER, settings: Settings | None = None, workdir: str | None = None,
             report: Reporter = null_reporter, workers: int | None = None, info: MediaInfo | None = None,
             readable: str | None = None) -> Plan:
    """Probe and plan ``source``; ``plan.json`` lands under ``root/workdir``. Nothing is split yet.

    ``workers`` is how many encoder processes will share the job (sizes an automatic chunk length
    and balances the tasks); ``info`` is the source's probe when the caller already has it.
    ``readable``: where under ``root`` the tasks can read ``source`` itself; in a container that
    seeks by its index they then read their segments straight from it (the plan needs no split)."""
    settings = settings or Settings()
    job_id = job_id or str(uuid.uuid4())
    workdir = workdir or layout.work_dir(job_id)
    t = time.perf_counter()
    report(ProgressEvent(job_id, "stage", stage=Stage.PROBING))
    if info is None:
        info = probe(source, settings.limits)
    t_probe = time.perf_counter()
    plan = make_plan(info, ladder, settings, job_id=job_id, workdir=workdir, workers=workers,
                     source=readable)
    t_plan = time.perf_counter()
    report(ProgressEvent(job_id, "planned", totals=plan_totals(plan)))
    save_plan(plan, root)
    save_timings(root, plan, {"probe": t_probe - t, "plan": t_plan - t_probe})
    return plan


def prepare(source: str | os.PathLike, root: str | os.PathLike, *, report: Reporter = null_reporter,
            **kwargs) -> Plan:
    """The chord's first step: probe, plan and split ``source``; segments land under ``root/workdir``.

    A source under ``root`` in a container that seeks by its index is not split: every task reads
    its own segment from it (``Plan.source``; see segenc.split.segment_packets).

    Args:
        source: the input video file.
        root: the storage root every later step sees (a shared folder for remote workers).
        report: called with each ``ProgressEvent``.
        **kwargs: ``plan_job``'s: ``job_id``, ``ladder``, ``settings``, ``workdir``, ``workers``, ``info``.

    Returns:
        Plan: the job's segments, renditions and tasks (also saved as ``plan.json``).

    Raises:
        InputError: the source is at fault (see ``probe``).
        StorageFullError: the storage ran out of space while splitting.
    """
    plan = plan_job(source, root, report=report, readable=_under(root, source), **kwargs)
    t = time.perf_counter()
    if plan.source is None:
        report(ProgressEvent(plan.job_id, "stage", stage=Stage.SPLITTING))
        split(source, plan, root)
    elif plan.subtitles_source:  # read straight from the source: only its subtitles are copied
        copy_side_tracks(source, plan, root, audio=False, subtitles=True)
    save_timings(root, plan, {**load_timings(root, plan), "split": time.perf_counter() - t})
    return plan


def encode_chunks(specs, root: str | os.PathLike, report: Reporter = null_reporter,
                  worker: str | None = None) -> list[ChunkResult]:
    """One chord-header task: a segment's renditions (decoded once), or a run of audio parts."""
    specs = list(specs)
    if specs[0].kind == "audio":
        return audio.encode_audio(specs, root, report, worker)
    return encode_video_chunks(specs, root, report, worker)


def encode_chunk(spec: ChunkSpec, root: str | os.PathLike, report: Reporter = null_reporter) -> ChunkResult:
    """Encode one chunk: a segment x rendition, or an audio part.

    Args:
        spec: one of ``plan.specs()``.
        root: the storage root the plan was prepared under.
        report: called with each ``ProgressEvent`` (frames done).

    Returns:
        ChunkResult: the chunk's output path, frames, bytes and seconds.

    Raises:
        EncodeError: the encoder failed (StorageFullError: out of space).
    """
    return encode_chunks([spec], root, report)[0]


def concat_rendition(plan: Plan, name: str, root: str | os.PathLike, out: Path) -> dict:
    """Stitch one rendition's chunks (+ the joined audio, see ``join_audio``) into ``out``;
    returns its stream facts."""
    return concat(plan.chunks_of(name), root, out, layout.audio_output(plan.workdir) if plan.audio_parts else None,
                  plan.subtitles_source, plan.info.title)


def join_audio(plan: Plan, root: str | os.PathLike) -> None:
    """The audio parts joined into one file for the MP4 downloads, once all are encoded (a remux,
    no re-encode). Idempotent."""
    if plan.audio_parts and not resolve(root, layout.audio_output(plan.workdir)).exists():
        audio.join(list(plan.audio_parts), root, resolve(root, layout.audio_output(plan.workdir)))


def finish(plan: Plan, results: list[ChunkResult], root: str | os.PathLike, out_dir: str | os.PathLike,
           report: Reporter = null_reporter, concatenated: dict[str, tuple[Path, dict]] | None = None
           ) -> EncodeResult:
    """The chord body: check every chunk, concat each rendition, package atomically.

    Args:
        plan: the job's plan (from ``prepare``).
        results: every chunk's ``ChunkResult``.
        root: the storage root the plan was prepared under.
        out_dir: where the renditions and ``manifest.json`` go.
        report: called with each ``ProgressEvent``.
        concatenated: renditions a runner already stitched.

    Returns:
        EncodeResult: the renditions, the manifest path and timings.

    Raises:
        IntegrityError: a chunk is missing or has the wrong frame count (nothing is concatenated).

    ``concatenated`` holds renditions a runner already stitched (staged path, facts). The caller
    announces ``done`` once it has recorded the result (so followers see the outputs)."""
    out_dir = Path(out_dir)
    report(ProgressEvent(plan.job_id, "stage", stage=Stage.CONCATENATING))
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
    join_audio(plan, root)
    staged = {name: path for name, (path, _) in (concatenated or {}).items()}
    facts = {name: f for name, (_, f) in (concatenated or {}).items()}
    try:
        for r in plan.renditions:
            if r.name not in facts:
                staged[r.name] = temp_name(out_dir / layout.output_name(r.name))
                facts[r.name] = concat_rendition(plan, r.name, root, staged[r.name])
        publish(plan, root, out_dir, final=True)  # the stream becomes VOD before the manifest lands
        timings = load_timings(root, plan)
        timings["concat"] = time.perf_counter() - t
        result = package(plan, out_dir, facts, staged, timings)
    finally:
        for p in staged.values():
            if p.exists():
                p.unlink()
    return result


def _under(root, source) -> str | None:
    """``source`` relative to ``root``, or None if it lies elsewhere."""
    try:
        return relative(root, source)
    except StorageError:
        return None


def save_plan(plan: Plan, root: str | os.PathLike) -> Path:
    path = resolve(root, layout.plan_file(plan.workdir))
    with atomic_path(path) as tmp:
        tmp.write_text(plan.to_json())
    return path


def load_plan(root: str | os.PathLike, workdir: str) -> Plan:
    return Plan.from_json(resolve(root, layout.plan_file(workdir)).read_text())


def save_timings(root, plan: Plan, timings: dict) -> None:
    resolve(root, layout.timings_file(plan.workdir)).write_text(json.dumps(timings))


def load_timings(root, plan: Plan) -> dict:
    try:
        return json.loads(resolve(root, layout.timings_file(plan.workdir)).read_text())
    except (OSError, ValueError):
        return {}
