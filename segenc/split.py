"""split: source -> segment files (stream copy, no re-encode) and a copy of the audio track.

One demux pass in decode order. A segment's file starts at its keyframe and holds every packet
whose DTS lies before the segment's end: a frame shown before the end is decoded before it, so
its packet (and every reference it needs) is in the file. Packets shared by two segments (the
pre-roll of a mid-GOP cut) are written to both.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Callable

import av

from .errors import CorruptInputError, storage_full
from .model import Plan, Segment
from .probe import open_input
from .storage import resolve, temp_name

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
    audio_out = None
    audio_first = None
    try:
        with open_input(source) as ic:
            vs = ic.streams.video[0]
            streams = [vs]
            if plan.audio_source:
                aus = ic.streams.audio[0]
                streams.append(aus)
                apath = resolve(root, plan.audio_source)
                atemp = temp_name(apath)
                audio_out = av.open(str(atemp), "w", format="matroska")
                audio_stream = audio_out.add_stream_from_template(aus, opaque=True)
            for pkt in ic.demux(streams):
                if pkt.size == 0 or pkt.pts is None:
                    continue
                if pkt.stream is not vs:
                    if audio_first is None:
                        audio_first = pkt.pts * pkt.time_base - info.start_pts * vs.time_base
                        audio_out.metadata[AUDIO_START_KEY] = str(audio_first)
                    pkt.stream = audio_stream
                    audio_out.mux(pkt)
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
        if audio_out is not None:
            audio_out.close()
    missing = [s.path for s in plan.segments if paths[s.index] not in done and s.index not in writers]
    if missing:
        raise CorruptInputError(f"{Path(source).name}: keyframes promised by the index were not found ({missing[0]})")
    for idx in list(writers):
        os.replace(temps[idx], paths[idx])
        done.append(paths[idx])
        ready(idx)
    if audio_out is not None:
        os.replace(atemp, apath)
        ready("audio")
    return [paths[s.index] for s in plan.segments]


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
