"""audio: the source's audio tracks -> one AAC stream each, for the whole file, in one MP4.

Encoded once and muxed at concat: per-chunk AAC would add priming samples at every seam and
drift. Runs as one more task of the chord header, in parallel with the video chunks. Each track is
aligned to the first video frame: audio before it is trimmed, a late start is padded with silence;
its language and title are kept.
"""

from __future__ import annotations

import os
import time
from fractions import Fraction

import av
import numpy as np

from .errors import CorruptInputError, storage_full
from .model import ChunkResult, ChunkSpec
from .progress import ProgressEvent, Reporter, local_worker, null_reporter
from .split import audio_start_key
from .storage import atomic_path, resolve

FRAME = 1024  # AAC frame size
AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def encode_audio(spec: ChunkSpec, root: str | os.PathLike, report: Reporter = null_reporter,
                 worker: str | None = None) -> ChunkResult:
    t0 = time.perf_counter()
    src, out = resolve(root, spec.source), resolve(root, spec.output)
    worker = worker or local_worker()
    report(ProgressEvent(spec.job_id, "chunk_started", chunk_id=spec.chunk_id, worker=worker))
    samples = 0
    try:
        with atomic_path(out) as tmp, av.open(str(tmp), "w", format="mp4") as oc:
            with _open(src) as ic:
                tracks = len(ic.streams.audio)
                tags = [dict(a.metadata) for a in ic.streams.audio]
            # Every track encoded once, one after another, each into its own stream of one file
            # (the muxer needs all streams before the first packet).
            plans = []
            for k in range(tracks):
                ic = _open(src)
                plans.append((ic, _track_output(ic, k, oc, spec, tags[k])))
            try:
                for k, (ic, (ost, rate, layout)) in enumerate(plans):
                    n = _encode_track(ic, ic.streams.audio[k], k, ost, oc, rate, layout,
                                      round(spec.end * rate) if spec.end else None)
                    samples = samples or n
            finally:
                for ic, _ in plans:
                    ic.close()
    except av.FFmpegError as exc:
        raise storage_full(exc) or CorruptInputError(f"audio: the audio track cannot be decoded ({exc})") from exc
    report(ProgressEvent(spec.job_id, "chunk_done", chunk_id=spec.chunk_id, frames=samples, worker=worker))
    return ChunkResult(spec.chunk_id, spec.output, samples, out.stat().st_size, time.perf_counter() - t0, worker)


def _open(src):
    return av.open(str(src), "r", format="matroska", container_options={"protocol_whitelist": "file"})


def _track_output(ic, k: int, oc, spec: ChunkSpec, tags: dict):
    ist = ic.streams.audio[k]
    rate = ist.codec_context.sample_rate
    rate = rate if rate in AAC_RATES else 48000
    layout = "mono" if ist.codec_context.channels == 1 else "stereo"
    ost = oc.add_stream("aac", rate=rate, layout=layout)
    ost.bit_rate = spec.settings.audio_bitrate
    for key in ("language", "title"):
        if tags.get(key):
            ost.metadata[key] = tags[key]
    return ost, rate, layout


def _encode_track(ic, ist, k: int, ost, oc, rate: int, layout: str, limit: int | None = None) -> int:
    """Encode one track, aligned to the first video frame; returns the samples written.
    ``limit``: stop after that many samples (the audio head)."""
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    fifo = av.AudioFifo()
    position = 0  # samples written, relative to the first video frame
    # The Matroska muxer may have shifted timestamps; the tag says where the audio began.
    first_at = Fraction(ic.metadata.get(audio_start_key(k), "0"))
    first: list[Fraction] = []
    for frame in _frames(ist, ic, first):
        shift = first[0] - first_at
        for rf in resampler.resample(frame):
            start = round((rf.pts * rf.time_base - shift) * rate) if rf.pts is not None else position
            data = rf.to_ndarray()
            if start > position:  # a gap (or late start): fill with silence
                data = np.concatenate([np.zeros((data.shape[0], start - position), data.dtype), data], axis=1)
            elif start < position:  # overlap (or audio before the video): trim
                data = data[:, position - start:]
            if limit is not None:
                data = data[:, :max(0, limit - position)]
            if data.shape[1] == 0:
                if limit is not None and position >= limit:
                    break
                continue
            nf = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
            nf.sample_rate = rate
            nf.pts, nf.time_base = position, Fraction(1, rate)
            position += data.shape[1]
            fifo.write(nf)
            _drain(fifo, ost, oc, rate, FRAME)
        if limit is not None and position >= limit:
            break  # the head has what it needs: stop decoding
    _drain(fifo, ost, oc, rate, 1)
    for p in ost.encode(None):
        oc.mux(p)
    return position


def _frames(ist, ic, first: list):
    """Decoded frames; ``first`` receives the time of the first packet (the stream's origin)."""
    for pkt in ic.demux(ist):
        if pkt.pts is not None and not first:
            first.append(pkt.pts * pkt.time_base)
        try:
            yield from ist.decode(pkt)
        except av.InvalidDataError:
            continue  # one damaged audio packet: the resampler pads the gap with silence


def _drain(fifo: av.AudioFifo, ost, oc, rate: int, minimum: int) -> None:
    while fifo.samples >= minimum:
        f = fifo.read(min(FRAME, fifo.samples))
        for p in ost.encode(f):
            oc.mux(p)
