"""The fast probe's index: a video track's frame times and keyframes from its MP4/MOV sample
tables, without reading a single packet.

libavformat already builds the track's index from the sample tables (``stream.index_entries``:
decode timestamps with the edit list applied, keyframe flags, byte offsets and sizes). What it
does not expose is each sample's composition offset, so this module reads the ``ctts`` box (and
``stts``, for the last sample's duration) of that track itself: presentation time = decode time
+ composition offset, exactly what the demuxer gives each packet.

``frame_times`` returns None whenever the index cannot be trusted and the caller must scan the
packets instead: not an MP4/MOV, a fragmented file (moof), an edit list with more than one
entry, an index pointing past the end of the file (truncated), sample counts that disagree.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

CONTAINERS = ("mov", "mp4")  # in libavformat's "mov,mp4,m4a,3gp,3g2,mj2"
_CONTAINERS_BOXES = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts"}
MAX_TABLE_BOX = 32 * 1024 * 1024  # a sample table larger than this is not read (4 h at 120 fps: 14 MB)


def _boxes(f, start: int, end: int):
    """(type, payload start, payload end) of the boxes in [start, end)."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        head = f.read(8)
        if len(head) < 8:
            return
        size, kind = struct.unpack(">I4s", head)
        body = pos + 8
        if size == 1:
            big = f.read(8)
            if len(big) < 8:
                return
            size = struct.unpack(">Q", big)[0]
            body = pos + 16
        elif size == 0:
            size = end - pos
        if size < body - pos or pos + size > end:
            return
        yield kind, body, pos + size
        pos += size


def _child(f, start: int, end: int, kind: bytes):
    for k, a, b in _boxes(f, start, end):
        if k == kind:
            return a, b
    return None


def _read(f, a: int, b: int) -> bytes | None:
    if b - a > MAX_TABLE_BOX:
        return None
    f.seek(a)
    data = f.read(b - a)
    return data if len(data) == b - a else None


def _runs(data: bytes, signed: bool) -> list[tuple[int, int]] | None:
    """(count, value) entries of an stts/ctts payload (full box)."""
    if len(data) < 8:
        return None
    n = struct.unpack(">I", data[4:8])[0]
    if len(data) < 8 + 8 * n:
        return None
    fmt = ">Ii" if signed else ">II"
    return [struct.unpack(fmt, data[8 + 8 * i:16 + 8 * i]) for i in range(n)]


def _video_tables(path: Path, track: int) -> dict | None:
    """The ``track``-th trak's stts and ctts runs and edit count, or None (fragmented, unreadable)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        top = list(_boxes(f, 0, size))
        if any(k == b"moof" for k, _, _ in top):
            return None
        moov = next(((a, b) for k, a, b in top if k == b"moov"), None)
        if moov is None or _child(f, *moov, b"mvex"):
            return None
        traks = [(a, b) for k, a, b in _boxes(f, *moov) if k == b"trak"]
        if track >= len(traks):
            return None
        trak = traks[track]
        edits = 0
        edts = _child(f, *trak, b"edts")
        if edts and (elst := _child(f, *edts, b"elst")):
            data = _read(f, *elst)
            edits = struct.unpack(">I", data[4:8])[0] if data and len(data) >= 8 else 99
        path_ = [b"mdia", b"minf", b"stbl"]
        box = trak
        for name in path_:
            box = _child(f, *box, name)
            if box is None:
                return None
        stts = _child(f, *box, b"stts")
        ctts = _child(f, *box, b"ctts")
        stts_runs = _runs(_read(f, *stts) or b"", signed=False) if stts else None
        ctts_runs = _runs(_read(f, *ctts) or b"", signed=True) if ctts else []
        if stts_runs is None or ctts_runs is None:
            return None
        return {"stts": stts_runs, "ctts": ctts_runs, "edits": edits}


def _expand(runs: list[tuple[int, int]], n: int) -> list[int] | None:
    out: list[int] = []
    for count, value in runs:
        out.extend([value] * min(count, n - len(out)))  # a lying count never allocates more than n
        if len(out) >= n:
            break
    return out[:n] if len(out) >= n else None


def frame_times(path: str | os.PathLike, stream) -> tuple[list[int], list[int], int] | None:
    """(presentation times in decode order, keyframes' presentation times, the duration of the
    last frame in presentation order), all in the stream's time base; None: scan the packets."""
    path = Path(path)
    entries = [e for e in stream.index_entries if not e.is_discard and e.size > 0]
    if not entries:
        return None
    if max(e.pos + e.size for e in entries) > path.stat().st_size:
        return None  # the index lists samples past the end: a truncated file
    tables = _video_tables(path, stream.index)
    if tables is None or tables["edits"] > 1:
        return None
    n = len(stream.index_entries)
    durations = _expand(tables["stts"], n)
    offsets = _expand(tables["ctts"], n) if tables["ctts"] else [0] * n
    if durations is None or offsets is None:
        return None
    pts, keys, last = [], [], 0
    for i, e in enumerate(stream.index_entries):
        if e.is_discard or e.size <= 0:
            continue
        p = e.timestamp + offsets[i]
        pts.append(p)
        if e.is_keyframe:
            keys.append(p)
        if p >= (pts[-2] if len(pts) > 1 else p):  # as the packet scan does: not behind the previous packet
            last = durations[i] or last
    return pts, keys, last
