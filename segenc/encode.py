"""encode: one chunk spec -> one MPEG-TS chunk of one rendition.

Decodes the segment (single thread), keeps exactly the frames the spec lists, scales them with
libavfilter (the same scaler the ffmpeg CLI uses) and encodes with libx264 single-threaded, so N
worker processes keep N cores busy. Output timestamps are the source's, exactly: the segment's
Matroska timestamps (1 ms) only identify frames, the spec's ``frame_pts`` give their times.
"""

from __future__ import annotations

import bisect
import os
import socket
import time
from fractions import Fraction
from pathlib import Path

import av
from av.video.frame import PictureType

from .errors import CorruptInputError, EncodeError, IntegrityError, LimitExceededError
from .model import ChunkResult, ChunkSpec
from .progress import ProgressEvent, Reporter, Throttle, null_reporter
from .storage import atomic_path, resolve

# Tolerance when matching a segment frame (1 ms Matroska timestamps) to a listed source frame.
MATCH_TOLERANCE = Fraction(3, 2000)
ROTATE = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}


def worker_name() -> str:
    """Who runs a chunk: the worker node's name when it has one, else host:pid."""
    return os.environ.get("SEGENC_WORKER_NAME") or f"{socket.gethostname()}:{os.getpid()}"


def encode_video_chunk(spec: ChunkSpec, root: str | os.PathLike, report: Reporter = null_reporter) -> ChunkResult:
    t_start = time.perf_counter()
    src = resolve(root, spec.source)
    out = resolve(root, spec.output)
    if not src.exists():
        raise EncodeError(f"chunk {spec.chunk_id}: segment file {spec.source} is missing")
    rend = spec.rendition
    tb = Fraction(spec.time_base)
    wanted = [p * tb for p in spec.frame_pts]
    first, last = wanted[0], wanted[-1]
    limits = spec.settings.limits
    worker = worker_name()
    report(ProgressEvent(spec.job_id, "chunk_started", chunk_id=spec.chunk_id, rendition=rend.name, worker=worker))
    throttle = Throttle()
    got = [False] * len(wanted)
    encoded = 0
    decoded = 0
    try:
        with av.open(str(src), "r", format="matroska", container_options={"protocol_whitelist": "file"}) as ic, \
                atomic_path(out) as tmp, av.open(str(tmp), "w", format="mpegts") as oc:
            ist = ic.streams.video[0]
            ist.codec_context.thread_count = 1
            seg_tb = ist.time_base
            ost = _x264_stream(oc, spec, tb)
            graph = None
            offset = None
            for pkt in ic.demux(ist):
                if offset is None and pkt.pts is not None:
                    offset = pkt.pts * seg_tb - spec.key_pts * tb  # segment clock minus source clock
                for frame in _decode(ist, pkt):
                    decoded += 1
                    if decoded > len(spec.frame_pts) + (spec.key_pts and 0) + 100_000 or \
                            frame.width > limits.max_width or frame.height > limits.max_height:
                        raise LimitExceededError(f"chunk {spec.chunk_id}: the stream is not what its header said "
                                                 f"({frame.width}x{frame.height} frame, {decoded} frames decoded)")
                    t = frame.pts * seg_tb - offset
                    if t < first - MATCH_TOLERANCE or t > last + MATCH_TOLERANCE:
                        continue  # pre-roll from the keyframe, or past this chunk's end
                    i = _match(wanted, t)
                    if i is None or got[i]:
                        raise IntegrityError(f"chunk {spec.chunk_id}: frame at {float(t):.4f}s does not match the source index")
                    got[i] = True
                    if graph is None:
                        graph = _graph(frame, rend.width, rend.height, spec)
                    graph.push(frame)
                    for out_frame in _pull(graph):
                        out_frame.pts = spec.frame_pts[i]
                        out_frame.time_base = tb
                        out_frame.pict_type = PictureType.NONE  # else x264 obeys the source's frame types
                        for p in ost.encode(out_frame):
                            oc.mux(p)
                        encoded += 1
                    if throttle.ready():
                        report(ProgressEvent(spec.job_id, "frames", chunk_id=spec.chunk_id, rendition=rend.name,
                                             frames=encoded, worker=worker))
            for p in ost.encode(None):
                oc.mux(p)
            if not all(got):
                missing = got.index(False)
                raise CorruptInputError(f"chunk {spec.chunk_id}: {got.count(False)} of {len(got)} frames could not be "
                                        f"decoded (first at {float(wanted[missing]):.3f}s); the source is damaged")
    except av.FFmpegError as exc:
        raise CorruptInputError(f"chunk {spec.chunk_id}: decoding or encoding failed ({exc})") from exc
    size = out.stat().st_size
    report(ProgressEvent(spec.job_id, "chunk_done", chunk_id=spec.chunk_id, rendition=rend.name, frames=encoded, worker=worker))
    return ChunkResult(spec.chunk_id, spec.output, encoded, size, time.perf_counter() - t_start, worker)


def _x264_stream(oc, spec: ChunkSpec, tb: Fraction):
    rend, s = spec.rendition, spec.settings
    ost = oc.add_stream("libx264")
    cc = ost.codec_context
    cc.width, cc.height, cc.pix_fmt = rend.width, rend.height, "yuv420p"
    cc.time_base = tb
    if len(spec.frame_pts) > 1:
        span = (spec.frame_pts[-1] - spec.frame_pts[0]) * tb
        cc.framerate = (Fraction(len(spec.frame_pts) - 1) / span).limit_denominator(1001) if span else Fraction(25)
    cc.thread_count = 1
    cc.options = {"preset": s.preset, "crf": str(s.crf), "profile": "high", "threads": "1"}
    ost.time_base = Fraction(1, 90000)
    return ost


def _graph(frame: av.VideoFrame, w: int, h: int, spec: ChunkSpec) -> av.filter.Graph:
    g = av.filter.Graph()
    chain = [g.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                          time_base=Fraction(spec.time_base))]
    for f in ROTATE.get(spec.rotation, []):
        name, _, args = f.partition("=")
        chain.append(g.add(name, args or None))
    chain.append(g.add("scale", f"{w}:{h}:flags={spec.settings.scaler}"))
    chain.append(g.add("format", "yuv420p"))
    chain.append(g.add("setsar", "1"))
    chain.append(g.add("buffersink"))
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    g.configure()
    return g


def _pull(graph: av.filter.Graph):
    while True:
        try:
            yield graph.pull()
        except (av.BlockingIOError, av.EOFError):
            return


def _decode(stream, pkt):
    try:
        return stream.decode(pkt)
    except av.InvalidDataError as exc:
        raise CorruptInputError(f"undecodable video data ({exc})") from exc


def _match(wanted: list[Fraction], t: Fraction) -> int | None:
    i = bisect.bisect_left(wanted, t)
    best = None
    for j in (i - 1, i):
        if 0 <= j < len(wanted) and abs(wanted[j] - t) <= MATCH_TOLERANCE:
            if best is None or abs(wanted[j] - t) < abs(wanted[best] - t):
                best = j
    return best
