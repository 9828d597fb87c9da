"""Remote workers read their own segment of an MP4 source with bounded HTTP Range requests.

A worker without the shared storage keeps, per job, a sparse local file the size of the source
that holds only what its tasks read: first the container's header (every top-level box: the
headers, and whole but for the ``mdat``, from which libavformat builds its index: each sample's byte offset and
size), then, for each task, the bytes of exactly the samples it reads (a video task: its
keyframe to a few samples past its end, in decode order; an audio task: its track's samples
over its span, with the seek margin and lead-in). Samples closer than GAP bytes go in one
range. The task then reads the sparse file exactly as a worker with the storage reads the
source (split.segment_packets, audio.encode): the demuxer never looks at the bytes it skips.
Nothing else is fetched, and the main instance writes no copy of anything for it.

Only plain MP4/MOV sources (one ``moov``, no fragments, an index mp4index trusts): for others
``fetch`` returns False and the caller falls back to the segment copies the main instance
writes on request. One node's pool processes share the file; a lock serialises the fetches,
and a sidecar lists the byte ranges present.
"""

from __future__ import annotations

import fcntl
import json
import math
import struct
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av

from ..audio import FRAME, LEAD_IN, LEAD_OUT, SEEK_MARGIN
from ..model import ChunkSpec
from ..mp4index import CONTAINERS, frame_times
from ..probe import open_input
from ..storage import resolve
from .transfer import Transfer

HEAD_BYTES = 4096  # the first request: what open_input sniffs, and the ftyp
MAX_BOX = 64 << 20  # a top-level box other than mdat is fetched whole; a larger one: not for this reader
GAP = 16 * 1024  # samples closer than this are fetched in one range
VIDEO_SLACK = 2  # samples past the first one at or after the end (the reader stops at that one)
AUDIO_SLACK = Fraction(1, 10)  # seconds either side of an audio task's span, past its margins


def fetch(t: Transfer, local: Path, group: list[ChunkSpec]) -> bool:
    """Fetch what ``group`` (one task's specs, read straight from the source) needs into the
    sparse copy at ``local``/source; False if the source is not such an MP4 (nothing fetched
    for the task then)."""
    spec = group[0]
    path = resolve(local, spec.source)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        have = _have(path)
        if have is None:
            have = _fetch_header(t, spec.job_id, path)
        if not have["mp4"]:
            return False
        wanted = extents(path, group)
        if wanted is None:
            return False
        missing = _missing(wanted, have["ranges"])
        if missing:
            t.fetch_ranges(spec.job_id, missing, path)
            have["ranges"] = _merge(have["ranges"] + missing, 0)
            _save(path, have)
    return True


def extents(path: Path, group: list[ChunkSpec]) -> list[tuple[int, int]] | None:
    """The byte ranges [start, end) of the samples ``group`` reads from the (sparse) source."""
    spec = group[0]
    try:
        with open_input(path) as ic:
            if not set(ic.format.name.split(",")) & set(CONTAINERS):
                return None
            picked = _video_samples(path, ic.streams.video[0], spec) if spec.kind == "video" else _audio_samples(ic, group)
            # (read while the container is open: an index entry points into the demuxer's memory)
            spans = sorted((e.pos, e.pos + e.size) for e in picked or ())
    except (av.FFmpegError, OSError):
        return None
    return _merge(spans, GAP) if spans else None


def _video_samples(path: Path, vs, spec: ChunkSpec):
    every = list(vs.index_entries)  # discarded samples too: the demuxer still reads them
    full = [i for i, e in enumerate(every) if not e.is_discard and e.size > 0]
    entries = [every[i] for i in full]
    times = frame_times(path, vs)
    if times is None or len(times[0]) != len(entries):
        return None
    pts = times[0]
    key = spec.key_pts + spec.origin
    start = next((i for i, e in enumerate(entries) if e.is_keyframe and pts[i] == key), None)
    if start is None:
        return None
    stop = len(entries)
    if spec.end_pts >= 0:
        end = spec.end_pts + spec.origin
        stop = next((i for i in range(start, len(entries)) if entries[i].timestamp >= end), len(entries))
        stop = min(len(entries), stop + VIDEO_SLACK)  # (stop itself is read: it ends the segment)
    return [e for e in every[full[start]:full[stop - 1] + 1] if e.size > 0]


def _audio_samples(ic, group: list[ChunkSpec]):
    zero = group[0].origin * Fraction(group[0].time_base)
    lo = zero + Fraction(group[0].span[0]) - SEEK_MARGIN - AUDIO_SLACK
    last = group[-1].span[1]
    picked = []
    for a in ic.streams.audio:
        rate = a.codec_context.sample_rate
        if not rate:
            continue
        margin = Fraction((LEAD_IN + 2) * FRAME, rate)
        hi = zero + Fraction(last) + Fraction((LEAD_OUT + 2) * FRAME, rate) + AUDIO_SLACK if last else math.inf
        entries = [e for e in a.index_entries if e.size > 0]  # discarded ones too: the priming the decoder reads
        tb = a.time_base
        inside = [i for i, e in enumerate(entries) if lo - margin <= e.timestamp * tb <= hi]
        if inside:
            picked += entries[max(0, inside[0] - 1):inside[-1] + 2]  # and the sample the seek lands on
    return picked


def _fetch_header(t: Transfer, job_id: str, path: Path) -> dict:
    """Every top-level box (the mdat's header only) into the sparse file; whether it is a plain MP4."""
    size = t.fetch_ranges(job_id, [(0, 1)], path)  # the size first: a source smaller than HEAD_BYTES
    ranges = [(0, min(HEAD_BYTES, size))]
    t.fetch_ranges(job_id, ranges, path)
    have = {"size": size, "mp4": False, "ranges": ranges}
    pos, moov = 0, False
    with open(path, "rb") as f:
        while pos + 8 <= size:
            if not _covered((pos, min(size, pos + 16)), have["ranges"]):
                t.fetch_ranges(job_id, [(pos, min(size, pos + 16))], path)
                have["ranges"] = _merge(have["ranges"] + [(pos, min(size, pos + 16))], 0)
            f.seek(pos)
            head = f.read(16)
            box, kind = struct.unpack(">I", head[:4])[0], head[4:8]
            if box == 1 and len(head) >= 16:
                box = struct.unpack(">Q", head[8:16])[0]
            elif box == 0:
                box = size - pos
            if box < 8 or kind in (b"moof", b"mfra"):
                break  # fragmented, or not boxes at all: not for this reader
            if kind == b"moov":
                if moov:
                    break
                moov = True
            if kind != b"mdat":  # the demuxer reads these whole (moov, udta, meta...)
                if box > MAX_BOX:
                    break  # a moov this large is not worth it: the segment copies serve
                if not _covered((pos, pos + box), have["ranges"]):
                    t.fetch_ranges(job_id, [(pos, pos + box)], path)
                    have["ranges"] = _merge(have["ranges"] + [(pos, pos + box)], 0)
            pos += box
        else:
            have["mp4"] = moov
    _save(path, have)
    return have


def _merge(ranges: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(a, b) for a, b in out]


def _covered(r: tuple[int, int], have: list[tuple[int, int]]) -> bool:
    return any(a <= r[0] and r[1] <= b for a, b in have)


def _missing(wanted: list[tuple[int, int]], have: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of ``wanted`` not yet in ``have`` (both sorted, disjoint)."""
    out = []
    for start, end in wanted:
        for a, b in have:
            if b <= start or a >= end:
                continue
            if a > start:
                out.append((start, a))
            start = max(start, b)
            if start >= end:
                break
        if start < end:
            out.append((start, end))
    return out


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".ranges.json")


def _have(path: Path) -> dict | None:
    try:
        have = json.loads(_sidecar(path).read_text())
    except (OSError, ValueError):
        return None
    have["ranges"] = [tuple(r) for r in have["ranges"]]
    return have if path.exists() else None


def _save(path: Path, have: dict) -> None:
    tmp = _sidecar(path).with_suffix(".tmp")
    tmp.write_text(json.dumps(have))
    tmp.replace(_sidecar(path))


@contextmanager
def _locked(path: Path):
    with open(path.with_name(path.name + ".lock"), "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
