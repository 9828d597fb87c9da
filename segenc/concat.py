"""concat: one rendition's chunk files (+ the audio and subtitle tracks) -> one MP4 (the download).

The chunks are CMAF fragments of one track (see segenc.codecs and segenc.stream) whose init
segments must be byte-identical. ``segenc.faststart`` writes the progressive MP4 from them box by
box: the video's sample table from the chunks' trun boxes, the side tracks' traks as FFmpeg's
muxer wrote them, every payload copied file to file. The result is opened again with FFmpeg
(frame count, dimensions) before it is renamed into place.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from . import faststart
from .errors import EncodeError, IntegrityError, storage_full
from .model import ChunkSpec
from .storage import atomic_path, resolve


def concat(chunks: list[ChunkSpec], root: str | os.PathLike, out: Path, audio: str | None = None,
           subtitles: str | None = None, title: str | None = None) -> dict:
    """Stitch ``chunks`` (in order) into ``out`` with every audio stream of ``audio`` and every
    subtitle stream of ``subtitles``; returns the validated stream facts."""
    files = [resolve(root, c.output) for c in chunks]
    for c, f in zip(chunks, files):
        if not f.exists() or f.stat().st_size == 0:
            raise IntegrityError(f"chunk {c.chunk_id} is missing ({c.output}); refusing to concat partial results")
    sides = [resolve(root, p) for p in (audio, subtitles) if p]
    expected = sum(c.frames for c in chunks)
    frame = sum(c.duration for c in chunks) / max(1, expected)
    what = chunks[0].rendition.name if chunks[0].rendition else out.name
    with atomic_path(out) as tmp:
        try:
            facts = faststart.write(files, sides, tmp, frame_seconds=float(frame), title=title, what=what)
        except OSError as exc:
            raise storage_full(exc) or EncodeError(
                f"{what}: writing the MP4 failed ({exc.strerror or exc})") from exc
        facts.update(validate(tmp, expected))
    return facts


def validate(path: Path, expected_frames: int) -> dict:
    """FFmpeg reads the file back: its video track holds ``expected_frames`` frames."""
    try:
        with av.open(str(path), "r", format="mp4") as c:
            vs = c.streams.video[0]
            frames, width, height = vs.frames, vs.codec_context.width, vs.codec_context.height
    except (av.FFmpegError, IndexError) as exc:
        raise IntegrityError(f"{path.name}: FFmpeg cannot read the stitched MP4 back ({exc})") from exc
    if frames != expected_frames:
        raise IntegrityError(f"{path.name}: {frames} frames after concat, expected {expected_frames}")
    return {"frames": frames, "width": width, "height": height}
