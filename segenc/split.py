"""split: source -> segment files (stream copy, no re-encode) and a copy of the audio track.

One demux pass in decode order. A segment's file starts at its keyframe and holds every packet
whose DTS lies before the segment's end: a frame shown before the end is decoded before it, so
its packet (and every reference it needs) is in the file. Packets shared by two segments (the
pre-roll of a mid-GOP cut) are written to both.

A job whose source lies on the storage every worker reads, in a container that seeks by its
index (``plan.direct_readable``), is not split at all: each task reads exactly those packets from
the source itself (``segment_packets``: one seek to the segment's keyframe, the same start and
end rule), so the chord goes out once probe and plan are done. What such a job still copies is
only what a task cannot read that way: the subtitle tracks (``copy_side_tracks``, a demux of
those tracks alone), and, for a worker without the storage, one segment or the audio on demand
(``write_segment``, ``copy_side_tracks``: the main instance serves them, see service/transfer.py).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

import av

from . import layout
from .codecs import track_tags
from .errors import CorruptInputError, storage_full
from .model import Plan, Segment
from .probe import open_input
from .storage import atomic_path, resolve, temp_name

# Matroska tag on the audio copy: where its first packet sits relative to the first video frame.
AUDIO_START_KEY = "SEGENC_AUDIO_START"


def split(source: str | os.PathLike, plan: Plan, root: str | os.PathLike,
          on_ready: Callable[[int | str], None] | None = None) -> list[Path]:
    """Write every segment of ``plan`` (and the audio copy) under ``root``.

    ``on_ready(index)`` is called as each segment file lands (renamed into place), and
    ``on_ready("audio")`` once the audio copy has, so encoding can start before the split ends."""
    ready = on_ready or (lambda key: None)
    info = plan.info
    t0 = info.start_pts
    starts: dict[int, list[Segment]] = {}
    for seg in plan.segments:
        starts.setdefault(info.frame_pts[seg.key_frame] + t0, []).append(seg)
    end_pts = {s.index: (info.frame_pts[s.end_frame] + t0 if s.end_frame < info.frames else None) for s in plan.segments}

    paths = {s.index: resolve(root, s.path) for s in plan.segments}
    temps = {i: temp_name(p) for i, p in paths.items()}  # unique per call: two splits never collide
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    writers: dict[int, tuple[av.container.OutputContainer, av.stream.Stream]] = {}
    done: list[Path] = []
    side: _SideTracks | None = None
    try:
        with open_input(source) as ic:
            vs = ic.streams.video[0]
            side = _SideTracks(ic, vs, plan, root)
            streams = [vs] + side.streams
            for pkt in ic.demux(streams):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                if pkt.stream is not vs:
                    side.mux(pkt)
                    continue
                if pkt.is_keyframe:
                    for seg in starts.pop(pkt.pts, ()):
                        oc = av.open(str(temps[seg.index]), "w", format="matroska")
                        writers[seg.index] = (oc, oc.add_stream_from_template(vs, opaque=True))
                targets = []
                for idx in list(writers):
                    end = end_pts[idx]
                    if end is not None and _past(pkt, end):
                        oc, _ = writers.pop(idx)
                        oc.close()
                        os.replace(temps[idx], paths[idx])
                        done.append(paths[idx])
                        ready(idx)
                    else:
                        targets.append(idx)
                for n, idx in enumerate(targets):
                    p = pkt if n == len(targets) - 1 else _copy(pkt)
                    p.stream = writers[idx][1]
                    writers[idx][0].mux(p)
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"{Path(source).name}: reading failed while splitting ({exc})") from exc
    finally:
        for idx, (oc, _) in writers.items():
            oc.close()
        if side is not None:
            side.close()
    missing = [s.path for s in plan.segments if paths[s.index] not in done and s.index not in writers]
    if missing:
        raise CorruptInputError(f"{Path(source).name}: keyframes promised by the index were not found ({missing[0]})")
    for idx in list(writers):
        os.replace(temps[idx], paths[idx])
        done.append(paths[idx])
        ready(idx)
    side.publish()
    if plan.audio_source:
        ready("audio")
    return [paths[s.index] for s in plan.segments]


def segment_packets(ic: av.container.InputContainer, vs: av.stream.Stream, start: int, end: int | None):
    """The packets ``split`` writes to the segment whose keyframe is at source pts ``start`` and
    that ends at pts ``end`` (None: at the stream's end), read by seeking ``ic`` to that keyframe.

    The demuxer seeks by its index to the keyframe at or before ``start``; packets are skipped up
    to the keyframe itself, then taken in decode order until decoding has moved past ``end``."""
    name = Path(ic.name).name
    try:
        ic.seek(start, stream=vs, backward=True, any_frame=False)
        started = False
        for pkt in ic.demux(vs):
            if pkt.size == 0 or pkt.pts is None:
                continue
            if not started:
                if pkt.is_keyframe and pkt.pts == start:
                    started = True
                elif pkt.is_keyframe and pkt.pts > start:
                    break  # the seek went past it: the index does not list that keyframe
                else:
                    continue
            if end is not None and _past(pkt, end):
                return
            yield pkt
    except av.FFmpegError as exc:
        raise CorruptInputError(f"{name}: reading failed at pts {start} ({exc})") from exc
    if not started:
        raise CorruptInputError(f"{name}: the keyframe at pts {start} that the index promised was not found")


def write_segment(source: str | os.PathLike, plan: Plan, root: str | os.PathLike, index: int) -> Path:
    """Segment ``index`` of a job read straight from its source, written as ``split`` would have
    (for a worker without the shared storage, which fetches it, when the source is not a plain
    MP4 it could read by byte range: segenc.distributed.ranges); returns its path."""
    seg = plan.segments[index]
    path = resolve(root, seg.path)
    t0 = plan.info.start_pts
    end = plan.info.frame_pts[seg.end_frame] + t0 if seg.end_frame < plan.info.frames else None
    try:
        with open_input(source) as ic, atomic_path(path) as tmp:
            vs = ic.streams.video[0]
            with av.open(str(tmp), "w", format="matroska") as oc:
                ost = oc.add_stream_from_template(vs, opaque=True)
                for pkt in segment_packets(ic, vs, plan.info.frame_pts[seg.key_frame] + t0, end):
                    pkt.stream = ost
                    oc.mux(pkt)
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"{Path(source).name}: writing segment {index} failed ({exc})") from exc
    return path


def copy_side_tracks(source: str | os.PathLike, plan: Plan, root: str | os.PathLike, *, audio: bool,
                     subtitles: bool) -> None:
    """The audio copy and/or the subtitle copy alone, as ``split`` writes them, in one demux of
    those tracks only (a job read straight from its source needs its subtitles copied; a worker
    without the storage fetches the audio copy)."""
    side = None
    try:
        with open_input(source) as ic:
            side = _SideTracks(ic, ic.streams.video[0], plan, root, audio=audio, subtitles=subtitles)
            for pkt in ic.demux(side.streams) if side.streams else ():  # (no streams: demux would read all)
                if pkt.size and pkt.pts is not None:
                    side.mux(pkt)
            side.publish()
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"{Path(source).name}: reading failed while copying its "
                                                     f"audio or subtitles ({exc})") from exc
    finally:
        if side is not None:
            side.discard()


class _SideTracks:
    """The source's audio tracks (all of them, into one Matroska file, each tagged with where it
    begins relative to the first video frame) and its mov_text subtitle tracks (into one MP4,
    shifted so that the first video frame is time 0), with their languages and titles."""

    def __init__(self, ic, vs, plan: Plan, root, audio: bool | None = None, subtitles: bool | None = None) -> None:
        self.origin = plan.info.start_pts * vs.time_base  # the first video frame, in source seconds
        self.audio: dict[int, tuple[int, av.stream.Stream]] = {}
        self.subs: dict[int, av.stream.Stream] = {}
        self.streams: list = []
        self.audio_out = self.subs_out = None
        self.paths: list[tuple[Path, Path]] = []  # (temp, final)
        self.firsts: dict[int, object] = {}
        self.pending: list | None = []  # audio packets held until every track's start is known
        if plan.audio_source if audio is None else audio:
            path = resolve(root, layout.audio_source(plan.workdir))
            self.paths.append((temp_name(path), path))
            self.audio_out = av.open(str(self.paths[-1][0]), "w", format="matroska")
            for k, aus in enumerate(a for a in ic.streams.audio if a.codec_context.sample_rate):
                ost = self.audio_out.add_stream_from_template(aus, opaque=True)
                ost.metadata.update(track_tags(aus))
                self.audio[aus.index] = (k, ost)
                self.streams.append(aus)
        if plan.subtitles_source if subtitles is None else subtitles and plan.subtitles_source:
            path = resolve(root, plan.subtitles_source)
            self.paths.append((temp_name(path), path))
            self.subs_out = av.open(str(self.paths[-1][0]), "w", format="mp4")
            for sub in (t for t in ic.streams.subtitles if t.codec_context.name == "mov_text"):
                ost = self.subs_out.add_stream_from_template(sub, opaque=True)
                ost.time_base = sub.time_base
                ost.metadata.update(track_tags(sub))
                self.subs[sub.index] = ost
                self.streams.append(sub)

    def mux(self, pkt: av.Packet) -> None:
        if pkt.stream.index in self.subs:
            if bytes(pkt)[:2] == b"\x00\x00":
                return  # an empty sample ending the previous cue: the MP4 muxer writes its own
            shift = round(self.origin / pkt.time_base)
            pkt.pts = max(0, pkt.pts - shift)
            pkt.dts = pkt.pts
            pkt.stream = self.subs[pkt.stream.index]
            self.subs_out.mux(pkt)
            return
        k, ost = self.audio[pkt.stream.index]
        if k not in self.firsts:
            self.firsts[k] = pkt.pts * pkt.time_base - self.origin
        pkt.stream = ost
        if self.pending is None:
            self.audio_out.mux(pkt)
            return
        self.pending.append(pkt)
        if len(self.firsts) == len(self.audio):
            self._flush()

    def _flush(self) -> None:
        # The tags go into the header, which the first packet writes: hold audio until all are known.
        for k, first in self.firsts.items():
            self.audio_out.metadata[audio_start_key(k)] = str(first)
        for p in self.pending or ():
            self.audio_out.mux(p)
        self.pending = None

    def close(self) -> None:
        if self.audio_out is not None and self.pending:
            self._flush()
        for c in (self.audio_out, self.subs_out):
            if c is not None:
                c.close()
        self.audio_out = self.subs_out = None

    def publish(self) -> None:
        self.close()
        for temp, path in self.paths:
            os.replace(temp, path)

    def discard(self) -> None:
        """Close and remove whatever was not published."""
        self.close()
        for temp, _ in self.paths:
            temp.unlink(missing_ok=True)


def audio_start_key(track: int) -> str:
    """The Matroska tag saying where audio track ``track`` began (track 0: the historical name)."""
    return AUDIO_START_KEY if track == 0 else f"{AUDIO_START_KEY}_{track}"


def _past(pkt: av.Packet, end: int) -> bool:
    """True once decoding has moved past every frame shown before ``end``."""
    if pkt.dts is not None:
        return pkt.dts >= end
    return pkt.is_keyframe and pkt.pts >= end


def _copy(pkt: av.Packet) -> av.Packet:
    """Muxing consumes a packet; segments sharing packets each get their own copy."""
    out = av.Packet(bytes(pkt))
    out.pts, out.dts, out.time_base = pkt.pts, pkt.dts, pkt.time_base
    out.duration = pkt.duration
    out.is_keyframe = pkt.is_keyframe
    return out


class _Cancelled(Exception):
    pass


class BackgroundSplit:
    """``split`` in a thread, so a runner can start a task as soon as its inputs have landed.

    ``ready(group)`` says whether a task's segment (or the audio copy) is written; it re-raises
    the split's error if it failed. ``cancel()`` stops the split at its next segment boundary."""

    def __init__(self, source: str | os.PathLike, plan: Plan, root: str | os.PathLike) -> None:
        self._landed: set[int | str] = set()
        self._cond = threading.Condition()
        self._cancelled = False
        self.error: BaseException | None = None
        self.finished = False
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._run, args=(source, plan, root), name="segenc-split",
                                        daemon=True)

    def start(self) -> "BackgroundSplit":
        self._thread.start()
        return self

    def _run(self, source, plan, root) -> None:
        t = time.perf_counter()
        try:
            split(source, plan, root, on_ready=self._land)
        except _Cancelled:
            pass
        except BaseException as exc:  # handed to the runner's thread by ready()/join()
            self.error = exc
        finally:
            self.seconds = time.perf_counter() - t
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def _land(self, key: int | str) -> None:
        if self._cancelled:
            raise _Cancelled
        with self._cond:
            self._landed.add(key)
            self._cond.notify_all()

    def ready(self, group) -> bool:
        if self.error is not None:
            raise self.error
        return all(("audio" if c.kind == "audio" else c.segment) in self._landed for c in group)

    def wait(self, timeout: float) -> None:
        """Sleep until something lands or the split ends (at most ``timeout`` seconds)."""
        with self._cond:
            if not self.finished:
                self._cond.wait(timeout)

    def join(self) -> None:
        """Wait for the whole split; raise its error."""
        self._thread.join()
        if self.error is not None:
            raise self.error

    def cancel(self) -> None:
        self._cancelled = True
        self._thread.join()
