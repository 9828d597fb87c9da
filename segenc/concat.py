"""concat: one rendition's chunk files (+ the audio track) -> one MP4 (the download).

The chunks are CMAF fragments of one track (see segenc.codecs and segenc.stream): their init
segments must be byte-identical, and the rendition's video is simply the first init followed by
every chunk's moof+mdat (fragments renumbered), which FFmpeg's mp4 demuxer reads as one
fragmented file with the source's timestamps (tfdt). That file is remuxed (stream copy) with the
single AAC track interleaved into a ``+faststart`` MP4. FFmpeg's mp4 demuxer shows fragments
with negative composition offsets (CMAF's trun v1) shifted by the B-frame delay (the first IDR
two frames late): the remux subtracts that shift so the first frame sits at its source time.
The result is checked (frame count, monotonic DTS) before it is renamed into place.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av

from .codecs import mp4_tag, track_tags
from .errors import EncodeError, IntegrityError, storage_full
from .fragments import FragmentFile
from .model import ChunkSpec
from .storage import atomic_path, resolve


def concat(chunks: list[ChunkSpec], root: str | os.PathLike, out: Path, audio: str | None = None,
           subtitles: str | None = None, title: str | None = None) -> dict:
    """Stitch ``chunks`` (in order) into ``out`` with every audio stream of ``audio`` and every
    subtitle stream of ``subtitles``; returns the validated stream facts."""
    files = [resolve(root, c.output) for c in chunks]
    folder = files[0].parent
    for c, f in zip(chunks, files):
        if f.parent != folder:
            raise IntegrityError(f"chunk {c.chunk_id} is not beside its siblings in {folder}")
        if not f.exists() or f.stat().st_size == 0:
            raise IntegrityError(f"chunk {c.chunk_id} is missing ({c.output}); refusing to concat partial results")
    listing = folder / "joined.mp4"
    start = join(chunks, files, listing)
    expected = sum(c.frames for c in chunks)
    frame = sum(c.duration for c in chunks) / max(1, expected)
    with atomic_path(out) as tmp:
        try:
            _mux(listing, resolve(root, audio) if audio else None, tmp, frame,
                 resolve(root, subtitles) if subtitles else None, title, start)
        except av.FFmpegError as exc:
            what = chunks[0].rendition.name if chunks[0].rendition else out.name
            raise storage_full(exc) or EncodeError(
                f"{what}: stitching the chunks into one MP4 failed ({getattr(exc, 'strerror', None) or exc}; "
                f"a source whose timestamps jump can cause this)") from exc
        facts = validate(tmp, expected)
    listing.unlink(missing_ok=True)
    return facts


def join(chunks: list[ChunkSpec], files: list[Path], out: Path) -> int:
    """The chunks' fragments as one fragmented MP4: the shared init, then every moof+mdat.
    Returns the first fragment's decode time (the first frame's, in the track's timescale)."""
    init = None
    start = 0
    with atomic_path(out) as tmp, open(tmp, "wb", buffering=0) as f:
        for k, (c, path) in enumerate(zip(chunks, files)):
            with FragmentFile(path, f"chunk {c.chunk_id}") as chunk:
                if init is None:
                    init, start = chunk.init, chunk.tfdt()
                    f.write(init)
                elif chunk.init != init:
                    raise IntegrityError(f"chunk {c.chunk_id}: its init segment differs from its rung's first chunk's")
                chunk.copy_media(f.fileno(), k + 1)
    return start


def _mux(listing: Path, audio: Path | None, tmp: Path, frame: float, subtitles: Path | None = None,
         title: str | None = None, start: int = 0) -> None:
    opts = {"protocol_whitelist": "file"}
    with av.open(str(listing), "r", format="mp4", container_options=opts) as vin, \
            av.open(str(tmp), "w", format="mp4", container_options={"movflags": "+faststart"}) as oc:
        vst = vin.streams.video[0]
        ov = oc.add_stream_from_template(vst, opaque=True)
        ov.time_base = Fraction(1, 90000)
        if mp4_tag(vst.codec_context.name):
            ov.codec_tag = mp4_tag(vst.codec_context.name)
        if title:
            oc.metadata["title"] = title
        inputs = [(vin, vst, ov)]
        side = []  # one open per stream: each is demuxed on its own
        try:
            for path, kind in ((audio, "audio"), (subtitles, "subtitles")):
                if path is None:
                    continue
                with av.open(str(path), "r", format="mp4", container_options={"protocol_whitelist": "file"}) as c:
                    count = len(getattr(c.streams, kind))
                for k in range(count):
                    c = av.open(str(path), "r", format="mp4", container_options={"protocol_whitelist": "file"})
                    side.append(c)
                    st = getattr(c.streams, kind)[k]
                    o = oc.add_stream_from_template(st, opaque=True)
                    o.metadata.update(track_tags(st))
                    inputs.append((c, st, o))
            _interleave(inputs, oc, frame, start)
        finally:
            for c in side:
                c.close()


def _interleave(inputs, oc, frame: float = 0.0, start: int | None = None) -> None:
    """Copy packets from several inputs, always taking the one with the earliest DTS next.

    The last video packet lasts at least half of ``frame`` (the mean frame duration, seconds): MP4
    takes the last sample's duration from it, and the chunks' last packet may carry ~0 (a one-frame
    video came out 22 us long)."""
    its = [(c.demux(s), o) for c, s, o in inputs]
    if start is not None:
        its[0] = (_shifted(its[0][0], start), its[0][1])
    # Seconds per tick of each input, as a float: the order only has to be close (the muxer
    # interleaves exactly), and a Fraction per packet was most of the loop's time.
    ticks = [float(s.time_base) for _, s, _ in inputs]
    heads: list = [next(it, None) for it, _ in its]
    while True:
        live = [(p.dts * ticks[i], i) for i, p in enumerate(heads) if p is not None and p.dts is not None]
        flush = [i for i, p in enumerate(heads) if p is not None and p.dts is None]
        for i in flush:  # demuxer flush packets carry no data
            heads[i] = next(its[i][0], None)
        if flush:
            continue
        if not live:
            return
        _, i = min(live)
        pkt = heads[i]
        heads[i] = next(its[i][0], None)
        if pkt.stream.type == "subtitle" and bytes(pkt)[:2] == b"\x00\x00":
            continue  # an empty mov_text sample (a gap): the MP4 muxer writes its own
        if i == 0 and frame > 0 and (heads[0] is None or heads[0].dts is None):
            want = int(round(frame / pkt.time_base))
            if (pkt.duration or 0) < want // 2:
                pkt.duration = want
        pkt.stream = its[i][1]
        oc.mux(pkt)


def _shifted(packets, start: int):
    """Video packets with the demuxer's composition shift taken out: the first (an IDR, whose
    presentation is its decode time in CMAF) lands on ``start``."""
    shift = None
    for pkt in packets:
        if pkt.dts is not None:
            if shift is None:
                shift = pkt.pts - start
            pkt.pts -= shift
            pkt.dts -= shift
        yield pkt


def validate(path: Path, expected_frames: int) -> dict:
    """Count video packets, check DTS is strictly increasing, measure durations."""
    with av.open(str(path), "r", format="mp4") as c:
        vs = c.streams.video[0]
        frames = 0
        last = None
        end = 0
        for pkt in c.demux(vs):
            if pkt.size == 0 or pkt.dts is None:
                continue
            if last is not None and pkt.dts <= last:
                raise IntegrityError(f"{path.name}: video timestamps are not monotonic at packet {frames}")
            last = pkt.dts
            frames += 1
            end = max(end, pkt.pts + (pkt.duration or 0))
        duration = float(end * vs.time_base) - float((vs.start_time or 0) * vs.time_base)
        width, height = vs.codec_context.width, vs.codec_context.height
    if frames != expected_frames:
        raise IntegrityError(f"{path.name}: {frames} frames after concat, expected {expected_frames}")
    return {"frames": frames, "duration": duration, "width": width, "height": height}
