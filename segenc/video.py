"""video: one chunk spec -> one chunk (a CMAF fragment, see segenc.codecs) of one rendition.

Decodes the segment (single thread; from the split's file, or read straight from the source:
``ChunkSpec.direct``), keeps exactly the frames the spec lists, scales them with libavfilter (the
same scaler the ffmpeg CLI uses) and encodes with the job's codec single-threaded
(see segenc.codecs), so N worker processes keep N cores busy. IDRs fall at the chunk's first frame
and at every multiple of the job's gop in source time, the same in every rung. Output timestamps
are the source's, exactly: the segment's Matroska timestamps (1 ms) only identify frames, the
spec's ``frame_pts`` give their times.
"""

from __future__ import annotations

import bisect
import os
import time
from contextlib import ExitStack
from fractions import Fraction

import av
from av.video.frame import PictureType

from . import codecs
from .errors import CorruptInputError, EncodeError, IntegrityError, LimitExceededError, storage_full
from .model import ChunkResult, ChunkSpec
from .probe import open_input
from .progress import ProgressEvent, Reporter, Throttle, local_worker, null_reporter
from .split import segment_packets
from .storage import atomic_path, resolve

# Tolerance when matching a segment frame (1 ms Matroska timestamps) to a listed source frame.
MATCH_TOLERANCE = Fraction(3, 2000)
# Decoded frames past a segment's end that its file may hold (B-frame reordering).
REORDER_SLACK = 64
ROTATE = {90: ["transpose=clock"], 180: ["hflip", "vflip"], 270: ["transpose=cclock"]}


def encode_video_chunks(specs: list[ChunkSpec], root: str | os.PathLike,
                        report: Reporter = null_reporter, worker: str | None = None) -> list[ChunkResult]:
    """Encode one segment to one or more renditions, decoding it once. ``worker`` names who runs it
    in progress events (default host:pid)."""
    t_start = time.perf_counter()
    lead = specs[0]
    if any(s.source != lead.source or s.frame_pts != lead.frame_pts for s in specs):
        raise EncodeError("chunks encoded together must share one segment")
    src = resolve(root, lead.source)
    if not src.exists():
        raise EncodeError(f"chunk {lead.chunk_id}: {'source' if lead.direct else 'segment'} file {lead.source} "
                          f"is missing")
    tb = Fraction(lead.time_base)
    wanted = [p * tb for p in lead.frame_pts]
    first, last = wanted[0], wanted[-1]
    limits = lead.settings.limits
    # Frames a segment may decode: its pre-roll, its own frames, and a B-frame tail.
    max_decoded = lead.preroll + len(wanted) + REORDER_SLACK
    worker = worker or local_worker()
    for s in specs:
        report(ProgressEvent(s.job_id, "chunk_started", chunk_id=s.chunk_id, rendition=s.rendition.name, worker=worker))
    throttle = Throttle()
    got = [False] * len(wanted)
    decoded = 0
    try:
        with ExitStack() as stack:
            ic = stack.enter_context(_open_segment(src, lead))
            outs = [_Output(s, stack.enter_context(atomic_path(resolve(root, s.output))), tb) for s in specs]
            for o in outs:
                stack.callback(o.container.close)
            ist = ic.streams.video[0]
            ist.codec_context.thread_count = 1
            skips = lead.preroll > 0 and ist.codec_context.name in codecs.PREROLL_SKIPS  # see there
            seg_tb = ist.time_base
            offset = None
            for pkt in _packets(ic, ist, lead):
                if offset is None and pkt is not None and pkt.pts is not None:
                    offset = pkt.pts * seg_tb - lead.key_pts * tb  # segment clock minus source clock
                if skips:
                    pre = pkt is not None and pkt.pts is not None and pkt.pts * seg_tb - offset < first - MATCH_TOLERANCE
                    ist.codec_context.skip_frame = "NONREF" if pre else "DEFAULT"
                for frame in _decode(ist, pkt):
                    decoded += 1
                    if decoded > max_decoded or frame.width > limits.max_width or frame.height > limits.max_height:
                        raise LimitExceededError(
                            f"chunk {lead.chunk_id}: the stream is not what its header said ({frame.width}x"
                            f"{frame.height} frame, {decoded} frames decoded where at most {max_decoded} fit)")
                    t = frame.pts * seg_tb - offset
                    if t < first - MATCH_TOLERANCE or t > last + MATCH_TOLERANCE:
                        continue  # pre-roll from the keyframe, or past this chunk's end
                    i = _match(wanted, t)
                    if i is None or got[i]:
                        raise IntegrityError(f"chunk {lead.chunk_id}: frame at {float(t):.4f}s does not match "
                                             f"the source index")
                    got[i] = True
                    for o in outs:
                        o.add(frame, lead.frame_pts[i])
                    if throttle.ready():
                        for o in outs:
                            report(ProgressEvent(o.spec.job_id, "frames", chunk_id=o.spec.chunk_id,
                                                 rendition=o.spec.rendition.name, frames=o.encoded, worker=worker))
            for o in outs:
                o.flush()
            if not all(got):
                missing = got.index(False)
                raise CorruptInputError(f"chunk {lead.chunk_id}: {got.count(False)} of {len(got)} frames could not "
                                        f"be decoded (first at {float(wanted[missing]):.3f}s); the source is damaged")
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"chunk {lead.chunk_id}: decoding or encoding failed ({exc})") from exc
    seconds = time.perf_counter() - t_start
    results = []
    for o in outs:
        s = o.spec
        report(ProgressEvent(s.job_id, "chunk_done", chunk_id=s.chunk_id, rendition=s.rendition.name,
                             frames=o.encoded, worker=worker))
        results.append(ChunkResult(s.chunk_id, s.output, o.encoded, resolve(root, s.output).stat().st_size,
                                   seconds, worker))
    return results


class _Output:
    """One rendition of a segment: scaler graph -> encoder -> chunk file."""

    def __init__(self, spec: ChunkSpec, path, tb: Fraction) -> None:
        self.spec = spec
        self.tb = tb
        ext = spec.output.rpartition(".")[2]
        self.container = av.open(str(path), "w", format=codecs.muxer(ext), options=codecs.muxer_options(ext))
        self.stream = codecs.add_video_stream(self.container, spec, tb)
        self.graph: av.filter.Graph | None = None
        self.idr = codecs.idr_pts(spec)
        self.encoded = 0

    def add(self, frame: av.VideoFrame, pts: int) -> None:
        if self.graph is None:
            fmt = codecs.configure(self.stream.codec_context, frame, self.spec)
            self.graph = _graph(frame, self.spec.rendition.width, self.spec.rendition.height, self.spec, fmt)
        self.graph.push(frame)
        for out in _pull(self.graph):
            out.pts = pts
            out.time_base = self.tb
            # Only the gop grid makes IDRs; else the encoder would obey the source's frame types.
            out.pict_type = PictureType.I if pts in self.idr else PictureType.NONE
            for p in self.stream.encode(out):
                self.container.mux(p)
            self.encoded += 1

    def flush(self) -> None:
        for p in self.stream.encode(None):
            self.container.mux(p)


def _graph(frame: av.VideoFrame, w: int, h: int, spec: ChunkSpec, fmt: str = "yuv420p") -> av.filter.Graph:
    g = av.filter.Graph()
    chain = [g.add_buffer(width=frame.width, height=frame.height, format=frame.format.name,
                          time_base=Fraction(spec.time_base))]
    for f in ROTATE.get(spec.rotation, []):
        name, _, args = f.partition("=")
        chain.append(g.add(name, args or None))
    chain.append(g.add("scale", f"{w}:{h}:flags={spec.settings.scaler}"))
    chain.append(g.add("format", fmt))
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


def _open_segment(src, spec: ChunkSpec):
    """The segment's container: the split's file, or the source itself (``spec.direct``)."""
    if spec.direct:
        return open_input(src)
    return av.open(str(src), "r", format="matroska", container_options={"protocol_whitelist": "file"})


def _packets(ic, ist, spec: ChunkSpec):
    """The segment's packets in decode order: all of the split's file (its demuxer ends them with
    the decoder's flush), or read from the source, then None to flush the decoder."""
    if not spec.direct:
        yield from ic.demux(ist)
        return
    end = spec.end_pts + spec.origin if spec.end_pts >= 0 else None
    yield from segment_packets(ic, ist, spec.key_pts + spec.origin, end)
    yield None


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
