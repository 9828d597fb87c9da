"""faststart: a rung's CMAF chunks + its side tracks -> one progressive MP4, box by box.

No packet goes through a demuxer or a muxer. The video's sample table is built from the chunks'
``trun`` boxes; each side track (the audio, the subtitles: MP4 files FFmpeg's muxer wrote) keeps
its ``trak`` as written, with only its chunk table replaced; every payload is copied file to file
(``segenc.fragments``). The layout is FFmpeg's ``+faststart``: ftyp, moov, mdat, the tracks
interleaved about every ``INTERLEAVE_SECONDS`` of decode time. Ten minutes of 1080p went through
PyAV's remux at ~20 us a packet; here the cost is the copy.

Video timing. The chunks carry signed composition offsets (trun v1: the IDR is presented at its
decode time, the B-frames before their decode times). A progressive MP4 keeps them unsigned, as
FFmpeg does: every offset is raised by the most negative one (the B-frame delay, ``shift``), and
the edit list starts the presentation ``shift`` into the media. A first frame later than 0 gets
an empty edit in front, so every frame plays at its source time. A sample's decode duration is
the distance to the next sample's decode time, across chunks from their ``tfdt``; the very last
frame lasts at least half the mean frame duration (a chunk's last sample may carry ~0).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .codecs import mp4_tag
from .errors import IntegrityError
from .fragments import FragmentFile, boxes, copy_range, file_boxes, read_exact, write_all

INTERLEAVE_SECONDS = 1.0
_ENTRY_CODECS = {"avc1": "h264", "avc3": "h264", "hev1": "hevc", "hvc1": "hevc", "av01": "av1"}
_U32 = 0xFFFFFFFF
_NON_SYNC = 0x00010000  # sample_is_non_sync_sample, in ISO BMFF sample flags


@dataclass
class _Run:
    """A run of one track's samples, contiguous in ``fd``: one chunk of the output."""
    track: int
    start: float  # decode time of its first sample, seconds (orders the interleave)
    fd: int
    offset: int
    size: int
    samples: int
    out: int = 0  # its offset in the output


@dataclass
class _Track:
    trak: bytes  # the trak box, its stbl's chunk tables still to be replaced
    runs: list[_Run] = field(default_factory=list)


# --- boxes ------------------------------------------------------------------------------------

def _box(kind: str, *payload: bytes) -> bytes:
    body = b"".join(payload)
    if len(body) + 8 > _U32:
        return struct.pack(">I4sQ", 1, kind.encode("latin-1"), len(body) + 16) + body
    return struct.pack(">I4s", len(body) + 8, kind.encode("latin-1")) + body


def _full(kind: str, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _child(data: bytes, start: int, end: int, kind: str) -> tuple[int, int] | None:
    """(offset, size) of the first ``kind`` box directly inside data[start:end]."""
    for k, off, size in boxes(data, start, end):
        if k == kind:
            return off, size
    return None


def _path(data: bytes, *kinds: str) -> tuple[int, int]:
    """(offset, size) of the box at ``kinds`` (moov, trak, ...) from the top of ``data``."""
    start, end = 0, len(data)
    found = None
    for k in kinds:
        found = _child(data, start, end, k)
        if found is None:
            raise IntegrityError(f"no {'/'.join(kinds)} box")
        off, size = found
        start, end = off + _header(data, off), off + size
    return found


def _header(data: bytes, off: int) -> int:
    return 16 if int.from_bytes(data[off:off + 4], "big") == 1 else 8


def _body(data: bytes, off: int, size: int) -> bytes:
    return data[off + _header(data, off):off + size]


def _replace(data: bytes, kinds: tuple[str, ...], new: bytes) -> bytes:
    """``data`` (one box) with the box at ``kinds`` below it replaced by ``new`` (b"": removed);
    every enclosing size is fixed up."""
    head = _header(data, 0)
    found = _child(data, head, len(data), kinds[0])
    if found is None:
        raise IntegrityError(f"no {kinds[0]} box")
    off, size = found
    inner = new if len(kinds) == 1 else _replace(data[off:off + size], kinds[1:], new)
    return _box(data[4:8].decode("latin-1"), data[head:off], inner, data[off + size:])


def _insert(data: bytes, after: str, new: bytes) -> bytes:
    """``data`` (one box) with ``new`` inserted right after its child ``after``."""
    head = _header(data, 0)
    off, size = _child(data, head, len(data), after) or (head, 0)
    return _box(data[4:8].decode("latin-1"), data[head:off + size], new, data[off + size:])


def _entries(body: bytes, width: int) -> list[tuple]:
    count = int.from_bytes(body[4:8], "big")
    return list(struct.iter_unpack(">" + "I" * width, body[8:8 + 4 * width * count]))


def _rle(values: list[int]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for v in values:
        if out and out[-1][1] == v:
            out[-1][0] += 1
        else:
            out.append([1, v])
    return [(n, v) for n, v in out]


# --- sample tables ----------------------------------------------------------------------------

def _chunk_boxes(runs: list[_Run], wide: bool) -> bytes:
    """stsc + stco/co64 for ``runs`` (at their output offsets)."""
    stsc, last = [], None
    for i, r in enumerate(runs):
        if r.samples != last:
            stsc.append(struct.pack(">III", i + 1, r.samples, 1))
            last = r.samples
    fmt = ">Q" if wide else ">I"
    offsets = b"".join(struct.pack(fmt, r.out) for r in runs)
    return (_full("stsc", 0, 0, struct.pack(">I", len(stsc)), *stsc)
            + _full("co64" if wide else "stco", 0, 0, struct.pack(">I", len(runs)), offsets))


def _with_chunks(track: _Track, wide: bool) -> bytes:
    """The track's trak with its stsc and chunk offset boxes for its runs (the rest as it was)."""
    trak = track.trak
    stbl_off, stbl_size = _path(trak, "trak", "mdia", "minf", "stbl")
    stbl = trak[stbl_off:stbl_off + stbl_size]
    kept = [stbl[o:o + s] for k, o, s in boxes(stbl, _header(stbl, 0)) if k not in ("stsc", "stco", "co64")]
    new_stbl = _box("stbl", *kept, _chunk_boxes(track.runs, wide))
    return _replace(trak, ("mdia", "minf", "stbl"), new_stbl)


# --- the video track from the chunks ------------------------------------------------------------

@dataclass
class _Samples:
    sizes: list[int] = field(default_factory=list)
    dts: list[int] = field(default_factory=list)  # decode times, track timescale, as the fragments say
    durations: list[int] = field(default_factory=list)  # as the truns say (the last one's is used)
    ctos: list[int] = field(default_factory=list)
    sync: list[bool] = field(default_factory=list)


def _trex(init: bytes) -> tuple[int, int, int]:
    """(default duration, size, flags) from the init's mvex/trex."""
    off, size = _path(init, "moov", "mvex", "trex")
    body = _body(init, off, size)
    _, _, _, duration, sample_size, flags = struct.unpack(">IIIIII", body[:24])
    return duration, sample_size, flags


def _read_fragments(chunk: FragmentFile, defaults: tuple[int, int, int], samples: _Samples,
                    timescale: int, track: int) -> list[_Run]:
    """The chunk's samples appended to ``samples``; its runs (at most INTERLEAVE_SECONDS each)."""
    runs: list[_Run] = []
    pending = [(off, size) for kind, off, size in chunk.media if kind == "moof"]
    for moof_off, moof_size in pending:
        moof = read_exact(chunk.fd, moof_off, moof_size, chunk.what)
        trafs = [(o, s) for k, o, s in boxes(moof, 8) if k == "traf"]
        if len(trafs) != 1:
            raise IntegrityError(f"{chunk.what}: a fragment with {len(trafs)} track fragments (one expected)")
        t_off, t_size = trafs[0]
        d_dur, d_size, d_flags = defaults
        base = moof_off
        decode = None
        truns = []
        for k, o, s in boxes(moof, t_off + 8, t_off + t_size):
            body = moof[o + 8:o + s]
            version, flags = body[0], int.from_bytes(body[1:4], "big")
            if k == "tfhd":
                p = 8
                if flags & 0x1:
                    base = int.from_bytes(body[p:p + 8], "big")
                    p += 8
                if flags & 0x2:
                    p += 4
                if flags & 0x8:
                    d_dur = int.from_bytes(body[p:p + 4], "big")
                    p += 4
                if flags & 0x10:
                    d_size = int.from_bytes(body[p:p + 4], "big")
                    p += 4
                if flags & 0x20:
                    d_flags = int.from_bytes(body[p:p + 4], "big")
            elif k == "tfdt":
                decode = int.from_bytes(body[4:12 if version == 1 else 8], "big")
            elif k == "trun":
                truns.append((version, flags, body))
        if decode is None:
            raise IntegrityError(f"{chunk.what}: a fragment without a tfdt")
        for version, flags, body in truns:
            count = int.from_bytes(body[4:8], "big")
            p = 8
            offset = base
            if flags & 0x1:
                offset = base + struct.unpack(">i", body[p:p + 4])[0]
                p += 4
            first_flags = None
            if flags & 0x4:
                first_flags = int.from_bytes(body[p:p + 4], "big")
                p += 4
            fields = [(bit, name) for bit, name in ((0x100, "d"), (0x200, "s"), (0x400, "f"), (0x800, "c")) if flags & bit]
            per = ">" + "".join("i" if (n == "c" and version == 1) else "I" for _, n in fields)
            values = struct.iter_unpack(per, body[p:p + 4 * len(fields) * count]) if fields else iter([()] * count)
            names = [n for _, n in fields]
            run_start = offset
            run_samples = 0
            run_t = decode
            for i, v in enumerate(values):
                got = dict(zip(names, v))
                dur, size = got.get("d", d_dur), got.get("s", d_size)
                sflags = got.get("f", first_flags if (i == 0 and first_flags is not None) else d_flags)
                samples.sizes.append(size)
                samples.dts.append(decode)
                samples.durations.append(dur)
                samples.ctos.append(got.get("c", 0))
                samples.sync.append(not sflags & _NON_SYNC)
                if run_samples and (decode - run_t) >= INTERLEAVE_SECONDS * timescale:
                    runs.append(_Run(track, run_t / timescale, chunk.fd, run_start, offset - run_start, run_samples))
                    run_start, run_samples, run_t = offset, 0, decode
                run_samples += 1
                offset += size
                decode += dur
            if run_samples:
                runs.append(_Run(track, run_t / timescale, chunk.fd, run_start, offset - run_start, run_samples))
    return runs


def _video_trak(init: bytes, s: _Samples, frame_ticks: int, movie_scale: int,
                timescale: int) -> tuple[bytes, int]:
    """The video trak (without chunk tables: see _with_chunks) and the movie-timescale duration
    it spans, from 0 (an empty edit first when the first frame starts later)."""
    n = len(s.sizes)
    deltas = _deltas(s, frame_ticks)
    bad = next((i for i, d in enumerate(deltas) if d <= 0), None)
    if bad is not None:
        raise IntegrityError(f"video timestamps are not monotonic at sample {bad + 1} of {n}")
    shift = max(0, -min(s.ctos))
    media_duration = sum(deltas)
    first = s.dts[0]
    movie_duration = _scale(media_duration, movie_scale, timescale)

    stbl = [_box("stsd", _sample_entry(_body(init, *_path(init, "moov", "trak", "mdia", "minf", "stbl", "stsd"))))]
    stts = _rle(deltas)
    stbl.append(_full("stts", 0, 0, struct.pack(">I", len(stts)), *(struct.pack(">II", c, d) for c, d in stts)))
    if not all(s.sync):
        keys = [i + 1 for i, k in enumerate(s.sync) if k]
        stbl.append(_full("stss", 0, 0, struct.pack(">I", len(keys)), *(struct.pack(">I", k) for k in keys)))
    ctts = _rle([c + shift for c in s.ctos])
    if ctts != [(n, 0)]:
        stbl.append(_full("ctts", 0, 0, struct.pack(">I", len(ctts)), *(struct.pack(">II", c, o) for c, o in ctts)))
    sizes = set(s.sizes)
    if len(sizes) == 1:
        stbl.append(_full("stsz", 0, 0, struct.pack(">II", s.sizes[0], n)))
    else:
        stbl.append(_full("stsz", 0, 0, struct.pack(">II", 0, n), struct.pack(f">{n}I", *s.sizes)))
    stbl.append(_chunk_boxes([], False))  # placeholders, replaced by _with_chunks

    trak = init[slice(*_span(_path(init, "moov", "trak")))]
    trak = _replace(trak, ("mdia", "minf", "stbl"), _box("stbl", *stbl))
    trak = _replace(trak, ("mdia", "mdhd"), _duration_box(trak, ("mdia", "mdhd"), media_duration, "mdhd"))
    trak = _replace(trak, ("tkhd",), _duration_box(trak, ("tkhd",), movie_duration, "tkhd"))
    edits = []
    if first > 0:  # the first frame plays at its source time
        edits.append((_scale(first, movie_scale, timescale), -1))
    edits.append((movie_duration, shift))
    big = any(d > _U32 or m > 0x7FFFFFFF for d, m in edits)
    fmt = ">Qqhh" if big else ">Iihh"
    elst = _full("elst", 1 if big else 0, 0, struct.pack(">I", len(edits)),
                 *(struct.pack(fmt, d, m, 1, 0) for d, m in edits))
    if _child(trak, 8, len(trak), "edts") is not None:
        trak = _replace(trak, ("edts",), _box("edts", elst))
    else:
        trak = _insert(trak, "tkhd", _box("edts", elst))
    return trak, _scale(first, movie_scale, timescale) + movie_duration


def _sample_entry(stsd: bytes) -> bytes:
    """The stsd body with the sample entry FFmpeg's remux would force (hev1 -> hvc1: codecs.mp4_tag)."""
    entry = stsd[12:16].decode("latin-1")
    tag = mp4_tag(_ENTRY_CODECS.get(entry, ""))
    return stsd[:12] + tag.encode("latin-1") + stsd[16:] if tag and tag != entry else stsd


def _span(found: tuple[int, int]) -> tuple[int, int]:
    return found[0], found[0] + found[1]


def _scale(value: int, to: int, frm: int) -> int:
    return (value * to + frm // 2) // frm


def _duration_box(trak: bytes, kinds: tuple[str, ...], duration: int, kind: str) -> bytes:
    """tkhd or mdhd of ``trak`` with its duration set (version 1 if it needs 64 bits)."""
    body = _body(trak, *_path(trak, "trak", *kinds))
    version, flags = body[0], int.from_bytes(body[1:4], "big")
    middle = 4 if kind == "mdhd" else 8  # mdhd: timescale; tkhd: track_ID + reserved
    if version == 1:
        times, ident, rest = body[4:20], body[20:20 + middle], body[28 + middle:]
    else:
        times, ident, rest = body[4:12], body[12:12 + middle], body[16 + middle:]
    if version == 0 and duration <= _U32:
        return _full(kind, 0, flags, times, ident, struct.pack(">I", duration), rest)
    if version == 0:
        times = struct.pack(">QQ", *struct.unpack(">II", times))
    return _full(kind, 1, flags, times, ident, struct.pack(">Q", duration), rest)


def _timescale(trak: bytes) -> int:
    body = _body(trak, *_path(trak, "trak", "mdia", "mdhd"))
    return int.from_bytes(body[20:24] if body[0] == 1 else body[12:16], "big")


def _movie_timescale(moov: bytes) -> int:
    body = _body(moov, *_path(moov, "moov", "mvhd"))
    return int.from_bytes(body[20:24] if body[0] == 1 else body[12:16], "big")


def _set_track_id(trak: bytes, track_id: int) -> bytes:
    off, size = _path(trak, "trak", "tkhd")
    body = bytearray(_body(trak, off, size))
    at = 20 if body[0] == 1 else 12
    body[at:at + 4] = struct.pack(">I", track_id)
    return _replace(trak, ("tkhd",), _box("tkhd", bytes(body)))


def _track_duration(trak: bytes) -> int:
    """The trak's duration in the movie timescale: its tkhd's."""
    body = _body(trak, *_path(trak, "trak", "tkhd"))
    return int.from_bytes(body[28:36], "big") if body[0] == 1 else int.from_bytes(body[20:24], "big")


# --- side tracks (audio, subtitles) -------------------------------------------------------------

def _side_tracks(fd: int, what: str, movie_scale: int, first_id: int) -> list[_Track]:
    """Every trak of the MP4 open at ``fd``, with its samples as runs of at most INTERLEAVE_SECONDS."""
    top = file_boxes(fd, os.fstat(fd).st_size, what)
    moov_at = next(((o, s) for k, o, s in top if k == "moov"), None)
    if moov_at is None:
        raise IntegrityError(f"{what}: no moov box")
    moov = read_exact(fd, *moov_at, what)
    if _movie_timescale(moov) != movie_scale:
        raise IntegrityError(f"{what}: movie timescale {_movie_timescale(moov)}, the video's is {movie_scale}")
    out = []
    for k, off, size in boxes(moov, _header(moov, 0)):
        if k != "trak":
            continue
        trak = _set_track_id(moov[off:off + size], first_id + len(out))
        out.append(_Track(trak, _side_runs(trak, fd, first_id + len(out) - 1)))
    return out


def _side_runs(trak: bytes, fd: int, track: int) -> list[_Run]:
    stbl_off, stbl_size = _path(trak, "trak", "mdia", "minf", "stbl")
    stbl = trak[stbl_off:stbl_off + stbl_size]
    tables = {k: _body(stbl, o, s) for k, o, s in boxes(stbl, _header(stbl, 0))}
    scale = _timescale(trak)
    stsz = tables["stsz"]
    fixed, count = struct.unpack(">II", stsz[4:12])
    sizes = [fixed] * count if fixed else list(struct.unpack(f">{count}I", stsz[12:12 + 4 * count]))
    if "co64" in tables:
        n = int.from_bytes(tables["co64"][4:8], "big")
        chunk_offsets = list(struct.unpack(f">{n}Q", tables["co64"][8:8 + 8 * n]))
    else:
        n = int.from_bytes(tables["stco"][4:8], "big")
        chunk_offsets = list(struct.unpack(f">{n}I", tables["stco"][8:8 + 4 * n]))
    stsc = _entries(tables["stsc"], 3)
    durations = [d for c, d in _entries(tables["stts"], 2) for _ in range(c)]
    if len(durations) != count:
        raise IntegrityError(f"track {track + 1}: {len(durations)} sample durations for {count} samples")
    runs: list[_Run] = []
    sample, decode = 0, 0
    for c, base in enumerate(chunk_offsets):
        per = next((n for first, n, _ in reversed(stsc) if first <= c + 1), 0)
        offset, run = base, None
        for _ in range(per):
            if sample >= count:
                raise IntegrityError(f"track {track + 1}: its chunk table lists more samples than it has")
            if run is None or decode / scale - run.start >= INTERLEAVE_SECONDS:
                run = _Run(track, decode / scale, fd, offset, 0, 0)
                runs.append(run)
            run.size += sizes[sample]
            run.samples += 1
            offset += sizes[sample]
            decode += durations[sample]
            sample += 1
    if sample != count:
        raise IntegrityError(f"track {track + 1}: its chunk table lists {sample} of its {count} samples")
    return runs


# --- the file ---------------------------------------------------------------------------------

def write(chunks: list[Path], sides: list[Path], out: Path, *, frame_seconds: float = 0.0,
          title: str | None = None, what: str = "rendition") -> dict:
    """The chunks' video (in order) and every track of each file in ``sides`` -> ``out`` (a
    progressive MP4, moov first). Returns the video's frames and duration (s)."""
    opened: list[FragmentFile] = []
    side_fds: list[int] = []
    try:
        for i, path in enumerate(chunks):
            opened.append(FragmentFile(path, f"{what} chunk {i}"))
        init = opened[0].init
        for f in opened[1:]:
            if f.init != init:
                raise IntegrityError(f"{f.what}: its init segment differs from its rung's first chunk's")
        moov_off, moov_size = _path(init, "moov")
        moov = init[moov_off:moov_off + moov_size]
        movie_scale = _movie_timescale(moov)
        trak = init[slice(*_span(_path(init, "moov", "trak")))]
        timescale = _timescale(trak)
        defaults = _trex(init)
        samples = _Samples()
        video = _Track(b"")
        for f in opened:
            video.runs += _read_fragments(f, defaults, samples, timescale, 0)
        if not samples.sizes:
            raise IntegrityError(f"{what}: the chunks hold no frames")
        tracks = [video]
        for path in sides:
            fd = os.open(path, os.O_RDONLY)
            side_fds.append(fd)
            tracks += _side_tracks(fd, path.name, movie_scale, len(tracks) + 1)

        runs = sorted((r for t in tracks for r in t.runs), key=lambda r: (r.start, r.track))
        payload = sum(r.size for r in runs)
        frame_ticks = round(frame_seconds * timescale)
        video.trak, video_duration = _video_trak(init, samples, frame_ticks, movie_scale, timescale)
        ftyp = _ftyp(init)
        mdat_head = 16 if payload + 16 > _U32 else 8
        # 32-bit chunk offsets unless the last chunk would start past 4 GB (then 64-bit ones,
        # which only make the moov bigger); the offsets never change the moov's size.
        wide = False
        size = len(_moov(moov, tracks, wide, video_duration, title))
        if len(ftyp) + size + mdat_head + payload > _U32:
            wide = True
            size = len(_moov(moov, tracks, wide, video_duration, title))
        pos = len(ftyp) + size + mdat_head
        for r in runs:
            r.out = pos
            pos += r.size
        head = ftyp + _moov(moov, tracks, wide, video_duration, title)
        assert len(head) == len(ftyp) + size
        with open(out, "wb", buffering=0) as w:
            fd = w.fileno()
            write_all(fd, head)
            write_all(fd, struct.pack(">I4sQ", 1, b"mdat", payload + 16) if mdat_head == 16
                      else struct.pack(">I4s", payload + 8, b"mdat"))
            for r in runs:
                copy_range(r.fd, fd, r.offset, r.size, what)
        return {"frames": len(samples.sizes), "duration": _duration_seconds(samples, timescale, frame_ticks)}
    finally:
        for f in opened:
            f.close()
        for fd in side_fds:
            os.close(fd)


def _deltas(s: _Samples, frame_ticks: int) -> list[int]:
    """Each sample's decode duration: to the next sample's decode time; the last one's from its
    trun, at least half a mean frame (``frame_ticks``)."""
    deltas = [b - a for a, b in zip(s.dts, s.dts[1:])] + [s.durations[-1]]
    if frame_ticks > 0 and deltas[-1] < frame_ticks // 2:
        deltas[-1] = frame_ticks
    return deltas


def _duration_seconds(s: _Samples, timescale: int, frame_ticks: int) -> float:
    """From the first frame shown to the end of the last one (as FFmpeg measures the stream)."""
    shown = [d + c for d, c in zip(s.dts, s.ctos)]
    return (max(p + d for p, d in zip(shown, _deltas(s, frame_ticks))) - min(shown)) / timescale


def _ftyp(init: bytes) -> bytes:
    """A progressive MP4's ftyp (FFmpeg's for mp4), with the codec's brand."""
    entry = _body(init, *_path(init, "moov", "trak", "mdia", "minf", "stbl", "stsd"))[8 + 4:8 + 8].decode("latin-1")
    brands = [b"isom", b"iso2"] + ([entry.encode()] if entry in ("avc1", "av01") else []) + [b"mp41"]
    return _box("ftyp", b"isom", struct.pack(">I", 512), *brands)


def _moov(init_moov: bytes, tracks: list[_Track], wide: bool, video_duration: int, title: str | None) -> bytes:
    traks = [_with_chunks(t, wide) for t in tracks]
    duration = max([video_duration] + [_track_duration(t.trak) for t in tracks[1:]])
    mvhd = bytearray(_body(init_moov, *_path(init_moov, "moov", "mvhd")))
    if mvhd[0] == 1:
        mvhd[24:32] = struct.pack(">Q", duration)
    elif duration > _U32:
        raise IntegrityError("the video is too long for a version-0 movie header")
    else:
        mvhd[16:20] = struct.pack(">I", duration)
    mvhd[-4:] = struct.pack(">I", len(tracks) + 1)  # next_track_ID
    return _box("moov", _box("mvhd", bytes(mvhd)), *traks, _udta(init_moov, title))


def _udta(init_moov: bytes, title: str | None) -> bytes:
    """The init's udta (FFmpeg's encoder tag), with ``title`` as the movie's ©nam."""
    found = _child(init_moov, 8, len(init_moov), "udta")
    udta = init_moov[found[0]:found[0] + found[1]] if found else _box("udta")
    if not title:
        return udta
    name = _box("\xa9nam", _box("data", struct.pack(">II", 1, 0), title.encode("utf-8")))
    try:
        _path(udta, "udta", "meta")
    except IntegrityError:
        meta = _full("meta", 0, 0, _full("hdlr", 0, 0, b"\0" * 4, b"mdirappl", b"\0" * 9), _box("ilst", name))
        return _box("udta", _body(udta, 0, len(udta)), meta)
    # meta is a full box: its children start 4 bytes into its body
    off, size = _path(udta, "udta", "meta")
    meta = udta[off:off + size]
    head = _header(meta, 0) + 4
    kids = [meta[o:o + s] for k, o, s in boxes(meta, head)]
    ilst_at = next((i for i, b in enumerate(kids) if b[4:8] == b"ilst"), None)
    if ilst_at is None:
        kids.append(_box("ilst", name))
    else:
        kids[ilst_at] = _box("ilst", name, _body(kids[ilst_at], 0, len(kids[ilst_at])))
    new_meta = _box("meta", meta[_header(meta, 0):head], *kids)
    return _replace(udta, ("meta",), new_meta)
