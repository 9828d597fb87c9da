"""audio: the source's audio tracks -> AAC, in parts on the AAC frame grid, encoded in parallel.

There is one part per video segment. Part ``i`` holds the packets whose first sample lies in
``[P_i, P_i+1)``, where ``P_i = edge(rate, b_i)`` is the first AAC frame (1024 samples) at or after
the start ``b_i`` of segment ``i`` (seconds from the first video frame). These are exactly the
packets of the stream's audio segment ``i`` (segenc.stream). Part 0 also holds the encoder's
priming packet (at -1024 samples), and the last part runs to the end of the track.

A task encodes a run of consecutive parts in one pass per track. It starts LEAD_IN frames
before its first part, so the encoder state at the join is the one a one-stream encode has there.
It stops LEAD_OUT frames past its last part, so the packets it keeps are never the ones flushed
early. Only its own parts' packets are kept. ``join`` chains the parts into the file the MP4
downloads mux. Naive concatenation of separate encodes would add 1024 priming samples at every
join, and the track would drift. Per join, the decoded parts match a one-stream encode of the same
track: the same packet timing and length to the sample, identical samples for a steady tone, and
on harsh signals no step at any join (the two encoders' rate control settles a little
differently, both valid codings). ``tests/media/test_media_audio_parts.py`` checks all of this.

Where the source's AAC already is what this module would write (``ChunkSpec.copy``, decided by
segenc.probe.copyable_audio and segenc.plan.copies_audio), a part is not encoded: it takes the
source's own packets of its span. Their frames lie on the same grid, so the part holds exactly
what an encoded one would hold in number and place, and the joined track is the source's.

Each track is aligned to the first video frame: audio before it is trimmed, and a late start is
padded with silence. Its language and title are kept. Sample positions come from the source's
timestamps, snapped to the track's own frame grid. The Matroska copy made by the split keeps
milliseconds, so a 1024-sample frame at 48 kHz reads as 21 or 22 ms. Taking that jitter for gaps
would pad or trim a few samples at every frame, and two parts would disagree about where a sample
belongs. A real gap, wider than the jitter, is still filled with silence. Past such a gap, a part
that starts later may be off by up to a millisecond at its join (the source's own rounding).
"""

from __future__ import annotations

import math
import os
import time
from contextlib import ExitStack, contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av

from .codecs import track_tags
from .errors import CorruptInputError, storage_full
from .model import ChunkResult, ChunkSpec
from .probe import open_input
from .progress import ProgressEvent, Reporter, local_worker, null_reporter
from .split import audio_start_key
from .storage import atomic_path, resolve, temp_name

FRAME = 1024  # AAC frame size
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)
LEAD_IN = 8   # frames encoded before a part and dropped (2 were enough on speech; 8 on a harsh signal)
LEAD_OUT = 2  # frames encoded after a part and dropped (the encoder looks one frame ahead)
SEEK_MARGIN = Fraction(1, 4)  # decoded before the lead-in after a seek (the first frames lack overlap)


def output_rate(rate: int) -> int:
    return rate if rate in AAC_RATES else 48000


def edge(rate: int, at: Fraction | str) -> int:
    """The first AAC frame starting at or after ``at`` seconds, in samples (a part's start)."""
    return -(-round(Fraction(at) * rate) // FRAME) * FRAME


def encode_audio(specs: list[ChunkSpec], root: str | os.PathLike, report: Reporter = null_reporter,
                 worker: str | None = None) -> list[ChunkResult]:
    """Encode one task's audio parts (consecutive runs, each in one pass), each into its own file."""
    specs = sorted(specs, key=lambda s: s.segment)
    runs: list[list[ChunkSpec]] = []
    for s in specs:
        if runs and s.segment == runs[-1][-1].segment + 1:
            runs[-1].append(s)
        else:
            runs.append([s])
    worker = worker or local_worker()
    return [r for run in runs for r in _encode_run(run, root, report, worker)]


def _encode_run(specs: list[ChunkSpec], root, report: Reporter, worker: str) -> list[ChunkResult]:
    if specs[0].copy:
        return _copy_run(specs, root, report, worker)
    t0 = time.perf_counter()
    src = resolve(root, specs[0].source)
    for s in specs:
        report(ProgressEvent(s.job_id, "chunk_started", chunk_id=s.chunk_id, worker=worker))
    whole = temp_name(resolve(root, specs[0].output))
    whole.parent.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        with av.open(str(whole), "w", format="mp4") as oc:
            with _open(src, specs[0]) as ic:
                tags = [track_tags(a) for a in _tracks(ic)]
            # Every track encoded once, one after another, each into its own stream of one file
            # (the muxer needs all streams before the first packet).
            plans = []
            try:
                for k in range(len(tags)):
                    ic = _open(src, specs[0])
                    plans.append((ic, _track_output(ic, k, oc, specs[0], tags[k])))
                for k, (ic, (ost, rate, layout)) in enumerate(plans):
                    first = edge(rate, specs[0].span[0])
                    last = specs[-1].span[1]
                    stop = edge(rate, last) + LEAD_OUT * FRAME if last else None
                    _encode_track(ic, _tracks(ic)[k], k, ost, oc, rate, layout,
                                  max(0, first - LEAD_IN * FRAME), stop, _video_origin(specs[0]))
            finally:
                for ic, _ in plans:
                    ic.close()
        seconds = (time.perf_counter() - t0) / len(specs)
        with packets(whole) as tracks:
            for ist, pkts in tracks:  # the encoder's first packet is its first frame's, 1024 earlier
                _renumber(pkts, max(0, edge(ist.codec_context.sample_rate, specs[0].span[0]) - LEAD_IN * FRAME) - FRAME)
            chosen = [[(ist, [p for p in pkts if _within(p, ist, s)]) for ist, pkts in tracks] for s in specs]
            for s, mine in zip(specs, chosen):  # (chosen first: storing renumbers the packets)
                out = resolve(root, s.output)
                with atomic_path(out) as tmp:
                    for ist, pkts in mine:  # stored from 0: an MP4 edit list would round the start to 1 ms
                        _renumber(pkts, 0)
                    _write(tmp, mine)
                samples = sum(p.duration for p in mine[0][1]) if mine else 0
                report(ProgressEvent(s.job_id, "chunk_done", chunk_id=s.chunk_id, frames=samples, worker=worker))
                results.append(ChunkResult(s.chunk_id, s.output, samples, out.stat().st_size, seconds, worker))
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"audio: the audio track cannot be decoded ({exc})") from exc
    finally:
        whole.unlink(missing_ok=True)
    return results


def _copy_run(specs: list[ChunkSpec], root, report: Reporter, worker: str) -> list[ChunkResult]:
    """A run of parts copied from the source's own AAC (``ChunkSpec.copy``): each part keeps the
    packets whose first sample lies in its span. The source's frames lie on the parts' grid
    (segenc.probe.copyable_audio), so a part holds what an encoded one would: whole frames from
    its edge on, part 0 with the priming packet at -1024. Nothing is decoded or encoded."""
    t0 = time.perf_counter()
    src = resolve(root, specs[0].source)
    for s in specs:
        report(ProgressEvent(s.job_id, "chunk_started", chunk_id=s.chunk_id, worker=worker))
    results = []
    try:
        with ExitStack() as stack:
            count = len(_tracks(stack.enter_context(_open(src, specs[0]))))
            taken = [[] for _ in specs]  # per part: (track stream, its packets) for every track
            for k in range(count):
                ic = stack.enter_context(_open(src, specs[0]))  # one pass per track, from its start
                ist = _tracks(ic)[k]
                pkts = _copied_packets(ic, ist, k, specs)
                for part, got in zip(taken, pkts):
                    part.append((ist, got))
            seconds = (time.perf_counter() - t0) / len(specs)
            for s, tracks in zip(specs, taken):
                out = resolve(root, s.output)
                with atomic_path(out) as tmp:
                    _write(tmp, tracks)
                samples = sum(p.duration for p in tracks[0][1])
                report(ProgressEvent(s.job_id, "chunk_done", chunk_id=s.chunk_id, frames=samples, worker=worker))
                results.append(ChunkResult(s.chunk_id, s.output, samples, out.stat().st_size, seconds, worker))
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"audio: the audio track cannot be copied ({exc})") from exc
    return results


def _copied_packets(ic, ist, k: int, specs: list[ChunkSpec]) -> list[list[av.Packet]]:
    """Track ``k``'s packets of each part of the run, stored from 0 in samples (1/rate)."""
    rate = ist.codec_context.sample_rate
    bounds = [(part_start(s, rate), edge(rate, s.span[1]) if s.span[1] else None) for s in specs]
    start, stop = bounds[0][0], bounds[-1][1]
    zero = _video_origin(specs[0])  # the first video frame on this file's clock, in seconds
    if zero is None:  # the split's copy: its tag says where the track began
        first = _first_time(ic, ist)
        if first is None:
            return [[] for _ in specs]
        zero = first - Fraction(ic.metadata.get(audio_start_key(k), "0"))
        ic.seek(math.floor(first / ist.time_base), stream=ist, backward=True)
    if start > 0:
        ic.seek(math.floor((zero + Fraction(start, rate) - SEEK_MARGIN) / ist.time_base), stream=ist, backward=True)
    taken: list[list[av.Packet]] = [[] for _ in specs]
    for pkt in ic.demux(ist):
        if pkt.pts is None or not pkt.size:
            continue
        # On the grid: exact from an MP4; the split's Matroska copy keeps milliseconds (< 0.5 frame).
        at = round(round((pkt.pts * pkt.time_base - zero) * rate) / FRAME) * FRAME
        if at < start:
            continue
        if stop is not None and at >= stop:
            break
        i = next(j for j, (a, b) in enumerate(bounds) if a <= at and (b is None or at < b))
        if pkt.time_base != Fraction(1, rate) or not pkt.duration:  # milliseconds: a whole frame, or
            ms = round((pkt.duration or 0) * pkt.time_base * rate)  # the last one's trimmed length (+-1 ms)
            pkt.duration = FRAME if not pkt.duration or abs(ms - FRAME) <= rate // 1000 + 1 else max(1, ms)
        pkt.pts = pkt.dts = at - bounds[i][0]  # stored from 0, as an encoded part is
        pkt.time_base = Fraction(1, rate)
        taken[i].append(pkt)
    return taken


def _within(pkt, ist, spec: ChunkSpec) -> bool:
    rate = ist.codec_context.sample_rate
    pts = round(pkt.pts * pkt.time_base * rate)
    return pts >= part_start(spec, rate) and (not spec.span[1] or pts < edge(rate, spec.span[1]))


def part_start(spec: ChunkSpec, rate: int) -> int:
    """The first sample of a part's first packet (part 0: the encoder's priming packet, -1024)."""
    return edge(rate, spec.span[0]) if spec.segment > 0 else -FRAME


def _renumber(pkts: list[av.Packet], first: int) -> None:
    """Timestamps from ``first`` (samples) on, packet after packet by their durations."""
    at = None
    for p in pkts:
        if at is None:
            at = round(Fraction(first, p.stream.codec_context.sample_rate) / p.time_base)
        p.pts = p.dts = at
        at += p.duration


@contextmanager
def part_packets(spec: ChunkSpec, root: str | os.PathLike):
    """Every track of an encoded part as (stream, packets) at their place in the track."""
    with packets(resolve(root, spec.output)) as tracks:
        for ist, pkts in tracks:
            _renumber(pkts, part_start(spec, ist.codec_context.sample_rate))
        yield tracks


@contextmanager
def packets(path: str | os.PathLike) -> Iterator[list[tuple[av.audio.stream.AudioStream, list[av.Packet]]]]:
    """Every track of an audio file as (stream, packets, as stored), while the file is open."""
    with av.open(str(path), "r", format="mp4", container_options={"protocol_whitelist": "file"}) as ic:
        tracks = [(ist, []) for ist in ic.streams.audio]
        index = {ist.index: pkts for ist, pkts in tracks}
        for pkt in ic.demux(*ic.streams.audio):
            if pkt.dts is not None and pkt.size:
                index[pkt.stream.index].append(pkt)
        yield tracks


def _write(path: Path, tracks: list[tuple]) -> None:
    """Packets (each list from one track, in order) into one MP4, a stream per track."""
    with av.open(str(path), "w", format="mp4") as oc:
        outs = []
        for ist, _ in tracks:
            o = oc.add_stream_from_template(ist, opaque=True)
            o.time_base = Fraction(1, ist.codec_context.sample_rate)
            o.metadata.update(track_tags(ist))
            outs.append(o)
        for o, (_, pkts) in zip(outs, tracks):
            for p in pkts:
                p.stream = o
                oc.mux(p)


def join(parts: list[ChunkSpec], root: str | os.PathLike, out: Path) -> None:
    """The parts (in order) as one file, every track one AAC stream."""
    with atomic_path(out) as tmp, _all_open(parts, root) as opened:
        tracks = []
        for k, (ist, _) in enumerate(opened[0]):
            tracks.append((ist, [p for part in opened for p in part[k][1]]))
        _write(tmp, tracks)


@contextmanager
def _all_open(parts: list[ChunkSpec], root):
    with ExitStack() as stack:
        yield [stack.enter_context(part_packets(p, root)) for p in parts]


def _open(src, spec: ChunkSpec):
    """The split's audio copy, or the source itself (``spec.direct``)."""
    if spec.direct:
        return open_input(src)
    return av.open(str(src), "r", format="matroska", container_options={"protocol_whitelist": "file"})


def _tracks(ic) -> list:
    """The audio tracks segenc encodes (those with a sample rate), in order: the copy's k-th is the source's."""
    return [a for a in ic.streams.audio if a.codec_context.sample_rate]


def _video_origin(spec: ChunkSpec) -> Fraction | None:
    """Where the first video frame lies on the source's clock (seconds), for a part read straight
    from the source; None for the split's copy, whose tags say where each track began."""
    return spec.origin * Fraction(spec.time_base) if spec.direct else None


def _track_output(ic, k: int, oc, spec: ChunkSpec, tags: dict):
    ist = _tracks(ic)[k]
    rate = output_rate(ist.codec_context.sample_rate)
    layout = "mono" if ist.codec_context.channels == 1 else "stereo"
    ost = oc.add_stream("aac", rate=rate, layout=layout)
    ost.bit_rate = spec.settings.audio_bitrate
    for key in ("language", "title"):
        if tags.get(key):
            ost.metadata[key] = tags[key]
    return ost, rate, layout


def _encode_track(ic, ist, k: int, ost, oc, rate: int, layout: str, begin: int, stop: int | None,
                  video_origin: Fraction | None = None) -> int:
    """Encode samples ``[begin, stop)`` of one track (``stop`` None: to its end), positions counted
    from the first video frame (at ``video_origin`` on ``ic``'s clock; None: where the split's
    tag puts it); returns the samples written."""
    import numpy as np  # here, not at the top: a pool process that only encodes video never loads it (~0.09 s)

    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    fifo = av.AudioFifo()
    origin = _first_time(ic, ist)
    if origin is None:
        return 0
    if video_origin is None:
        first_at = Fraction(ic.metadata.get(audio_start_key(k), "0"))  # where the track began
    else:
        first_at = origin - video_origin
    # Source time t is output sample (t - shift) * rate; the split's tag says where the audio began
    # (the Matroska muxer may have shifted timestamps).
    shift = origin - first_at
    base = round(first_at * rate)  # the track's first sample: its frames lie on a grid from here
    seek = Fraction(begin, rate) + shift - SEEK_MARGIN
    if seek > origin:
        ic.seek(int(seek / ist.time_base), stream=ist, backward=True)
    else:  # from the first packet (an MP4 seeks to 0 past its priming packet, at -1024)
        ic.seek(math.floor(origin / ist.time_base), stream=ist, backward=True)
    tolerance = rate // 1000 + 2  # millisecond timestamps: up to 0.5 ms off each
    position, cursor = begin, None  # next sample to write; where the next frame should start
    for frame in _frames(ist, ic):
        same_rate = frame.sample_rate == rate
        for rf in resampler.resample(frame):
            n = rf.samples
            start = round((rf.pts * rf.time_base - shift) * rate) if rf.pts is not None else cursor
            if start is None:
                continue
            if cursor is not None and abs(start - cursor) <= tolerance:
                start = cursor  # timestamp jitter, not a gap
            elif cursor is None and same_rate and n:
                snapped = base + round(Fraction(start - base, n)) * n
                start = snapped if abs(snapped - start) <= tolerance else start
            cursor = start + n
            data = rf.to_ndarray()
            if start > position:  # a gap (or late start): fill with silence
                data = np.concatenate([np.zeros((data.shape[0], start - position), data.dtype), data], axis=1)
            elif start < position:  # overlap (or before the range): trim
                data = data[:, position - start:]
            if stop is not None:
                data = data[:, :max(0, stop - position)]
            if data.shape[1] == 0:
                continue
            nf = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
            nf.sample_rate = rate
            nf.pts = None  # the FIFO counts from 0: _drain stamps what it reads
            position += data.shape[1]
            fifo.write(nf)
            _drain(fifo, ost, oc, FRAME, begin, rate)
        if stop is not None and position >= stop:
            break  # the run has what it needs: stop decoding
    _drain(fifo, ost, oc, 1, begin, rate)
    for p in ost.encode(None):
        oc.mux(p)
    return position - begin


def _first_time(ic, ist) -> Fraction | None:
    """The time of the track's first packet (its origin)."""
    for pkt in ic.demux(ist):
        if pkt.pts is not None:
            return pkt.pts * pkt.time_base
    return None


def _frames(ist, ic):
    for pkt in ic.demux(ist):
        try:
            yield from ist.decode(pkt)
        except av.InvalidDataError:
            continue  # one damaged audio packet: the gap is padded with silence


def _drain(fifo: av.AudioFifo, ost, oc, minimum: int, begin: int, rate: int) -> None:
    """Encode the FIFO's whole frames (``minimum`` 1: and the last partial one); ``begin`` is
    where its first sample lies."""
    while fifo.samples >= minimum:
        at = begin + fifo.samples_read
        f = fifo.read(min(FRAME, fifo.samples))
        f.pts, f.time_base = at, Fraction(1, rate)
        for p in ost.encode(f):
            oc.mux(p)
