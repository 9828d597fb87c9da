"""stream: the chunks published as an adaptive HLS + DASH stream, while the job still encodes.

Every chunk is already a CMAF fragment of its rung (see segenc.codecs): init (ftyp+moov) + one
moof+mdat whose ``tfdt`` is the chunk's first source timestamp. Publishing a chunk is:

    check its init is byte-identical to the rung's   (a mismatch fails the job, naming the chunk)
    number its fragment (mfhd sequence = segment index + 1; every chunk writes 1)
    write <rung>/s0000.m4s atomically, then rewrite <rung>/index.m3u8 atomically

and only the *contiguous prefix* of each rung is published: a chunk that finishes before its
predecessor waits on disk until the gap closes (players stall on a hole, they never see a 404).
The audio is encoded in parts, one per video segment, on the AAC frame grid (segenc.audio):
part ``n`` holds exactly the packets of ``audio<k>/s000n.m4s`` (one folder per track), so audio
segments are published as their parts land, like the video. The AAC priming packet (at -1024
samples) is left out: a tfdt cannot be negative, and shifting the whole track by +1024 samples (what FFmpeg's hls
muxer does) puts audio 21 ms late in players that ignore edit lists (hls.js); without it audio
starts at 0 with the video, and only the first 21 ms decode without their overlap window.

``publish`` is idempotent and derives its progress from the files (any call may be repeated);
call it from ONE process per job (the playlist writer). While encoding, media playlists are
``EVENT``; ``master.m3u8`` appears once segment 0 of every rung and of the audio exist; the final
call (``final=True``) makes them ``VOD`` with ``EXT-X-ENDLIST`` and measured bandwidths, and
writes ``stream.mpd`` (DASH, SegmentTimeline over the same files).

    OUT_DIR/master.m3u8, OUT_DIR/stream.mpd
    OUT_DIR/<rung>/init.mp4, s0000.m4s ..., index.m3u8
    OUT_DIR/audio0/init.mp4, s0000.m4s ..., index.m3u8
"""

from __future__ import annotations

import fcntl
import math
import os
from fractions import Fraction
from pathlib import Path

import av

from . import audio, codecs, layout
from .errors import IntegrityError
from .fragments import FragmentFile, boxes, numbered, split_fragment, tfdt
from .model import Plan
from .storage import atomic_path, resolve, temp_name

VIDEO_TIMESCALE = 90000  # the chunks' track timescale (codecs.add_video_stream)
AAC_CODEC = "mp4a.40.2"  # FFmpeg's aac encoder: AAC-LC
HLS_VERSION = 7


# --- publishing ------------------------------------------------------------------------------

def publish(plan: Plan, root: str | os.PathLike, out_dir: str | os.PathLike, *, final: bool = False) -> dict[str, int]:
    """Publish what has landed; returns the segments published per track (rungs, ``audio<k>``).

    ``final``: every chunk must be there; the playlists become VOD and the MPD is written. Calls
    for one job are serialised by a lock file in its work dir (``flock``: across processes); once
    the stream is final, or the work dir is gone (the job ended), a call only counts."""
    out = Path(out_dir)
    lock = resolve(root, layout.publish_lock(plan.workdir))
    if not lock.parent.is_dir():
        return _counts(plan, out)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not final and (out / layout.DASH_MANIFEST).exists():
            return _counts(plan, out)  # already VOD: never back to EVENT
        return _publish(plan, root, out, final)


def _counts(plan: Plan, out: Path) -> dict[str, int]:
    tracks = [r.name for r in plan.renditions] + [layout.audio_track(k) for k in range(audio_tracks(plan))]
    return {t: published(out, t) for t in tracks}


def _publish(plan: Plan, root, out: Path, final: bool) -> dict[str, int]:
    video = {r.name for r in plan.renditions}
    before = _counts(plan, out)
    counts = {r.name: _publish_rung(plan, root, out, r.name) for r in plan.renditions}
    for k in range(audio_tracks(plan)):
        counts[layout.audio_track(k)] = _publish_audio(plan, root, out, k)
    total = len(plan.segments)
    if final:
        short = {t: n for t, n in counts.items() if n < (total if t in video else 1)}
        if short:
            raise IntegrityError("cannot finish the stream: " + ", ".join(
                f"{t} has {n} of {total} segments" for t, n in short.items()))
    elif counts == before and all((out / layout.media_playlist(t)).exists() for t in counts):
        return counts  # nothing new: the playlists already say it (a cheap call for pollers)
    for track, n in counts.items():
        _write_media_playlist(plan, out, track, n, final)
    if all(n > 0 for n in counts.values()):
        _write_master(plan, out, counts, final)
        if final:
            _write_mpd(plan, out)
    return counts


def audio_tracks(plan: Plan) -> int:
    return max(1, len(plan.info.audio_languages)) if plan.audio_parts else 0


def published(out: Path, track: str) -> int:
    """The contiguous prefix of ``track`` already published in ``out``."""
    n = 0
    while (out / layout.stream_segment(track, n)).exists():
        n += 1
    return n


def _publish_rung(plan: Plan, root, out: Path, rung: str) -> int:
    chunks = plan.chunks_of(rung)
    n = published(out, rung)
    init_path = out / layout.stream_init(rung)
    init = init_path.read_bytes() if init_path.exists() else None
    while n < len(chunks):
        src = resolve(root, chunks[n].output)
        if not src.exists():
            break  # not encoded yet (or not transferred): the prefix ends here
        with FragmentFile(src, f"chunk {chunks[n].chunk_id}") as chunk:
            if init is None:
                with atomic_path(init_path) as tmp:
                    tmp.write_bytes(chunk.init)
                init = chunk.init
            elif chunk.init != init:
                raise IntegrityError(
                    f"chunk {chunks[n].chunk_id}: its init segment differs from the rest of {rung}'s (the "
                    f"encoder was configured differently for this chunk); the chunks cannot form one stream")
            with atomic_path(out / layout.stream_segment(rung, n)) as tmp:
                with open(tmp, "wb", buffering=0) as f:
                    chunk.copy_media(f.fileno(), n + 1)
        n += 1
    return n


def boundaries(plan: Plan) -> list[Fraction]:
    """Start time (seconds, source clock from the first frame) of every segment, and the end."""
    info = plan.info
    tb = info.tb
    starts = [info.frame_pts[s.first_frame] * tb for s in plan.segments]
    return starts + [Fraction(info.duration).limit_denominator(1_000_000)]


def _publish_audio(plan: Plan, root, out: Path, k: int) -> int:
    """Publish track ``k``'s segments from the contiguous prefix of encoded audio parts: part ``n``
    holds exactly the packets of segment ``n`` (see segenc.audio). A part without packets of this
    track (a track that ends before the video) ends it: its prefix is all there is."""
    track = layout.audio_track(k)
    init_path = out / layout.stream_init(track)
    init = init_path.read_bytes() if init_path.exists() else None
    n = published(out, track)
    while n < len(plan.audio_parts):
        if not resolve(root, plan.audio_parts[n].output).exists():
            break  # not encoded yet (or not transferred): the prefix ends here
        with audio.part_packets(plan.audio_parts[n], root) as tracks:
            ist, pkts = tracks[k]
            pkts = [p for p in pkts if p.pts >= 0]  # the encoder's priming packet (see the module docstring)
            if not pkts:
                break
            rate = ist.codec_context.sample_rate
            head, media = _fragment(ist, pkts, rate, out / layout.stream_segment(track, n), plan.settings.audio_bitrate)
        if init is None:
            with atomic_path(init_path) as tmp:
                tmp.write_bytes(head)
            init = head
        elif head != init:
            raise IntegrityError(f"audio track {k}: segment {n} has another init segment")
        with atomic_path(out / layout.stream_segment(track, n)) as tmp:
            tmp.write_bytes(numbered(media, n + 1))
        n += 1
    return n


def _fragment(ist, pkts, rate: int, near: Path, bit_rate: int) -> tuple[bytes, bytes]:
    """One audio segment as a CMAF fragment. The bit rate in its init is the configured one, not
    the one measured over each part (which differs from part to part)."""
    near.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(near)
    try:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": codecs.CHUNK_MOVFLAGS}) as oc:
            o = oc.add_stream_from_template(ist, opaque=True)
            o.time_base = Fraction(1, rate)
            o.bit_rate = bit_rate
            o.metadata.update(codecs.track_tags(ist))
            for p in pkts:
                p.stream = o
                oc.mux(p)
        data = tmp.read_bytes()
    finally:
        tmp.unlink(missing_ok=True)
    return split_fragment(data, "audio segment")


# --- playlists -------------------------------------------------------------------------------

def _durations(plan: Plan, out: Path, track: str, n: int) -> list[float]:
    if track.startswith(layout.AUDIO_TRACK):
        return _audio_durations(out, track, n)
    b = boundaries(plan)
    return [float(b[i + 1] - b[i]) for i in range(n)]


def _audio_durations(out: Path, track: str, n: int) -> list[float]:
    """Audio segments end on AAC frames, not exactly at the video boundaries: use their tfdt."""
    if n == 0:
        return []
    init = out / layout.stream_init(track)
    rate = _timescale(init.read_bytes())
    starts = [tfdt((out / layout.stream_segment(track, i)).read_bytes()) for i in range(n)]
    durs = [(b - a) / rate for a, b in zip(starts, starts[1:])]
    if n:
        last = (out / layout.stream_segment(track, n - 1)).read_bytes()
        durs.append(_fragment_duration(last) / rate)
    return durs


def _timescale(init: bytes) -> int:
    k = init.find(b"mdhd")
    v1 = init[k + 4] == 1
    off = k + 4 + 4 + (16 if v1 else 8)
    return int.from_bytes(init[off:off + 4], "big")


def _fragment_duration(media: bytes) -> int:
    """Sum of the sample durations of the first trun (default duration when the trun has none)."""
    for kind, off, size in boxes(media):
        if kind != "moof":
            continue
        for sub, soff, ssize in boxes(media, off + 8, off + size):
            if sub != "traf":
                continue
            default = 0
            for t, toff, tsize in boxes(media, soff + 8, soff + ssize):
                body = media[toff + 8:toff + tsize]
                flags = int.from_bytes(body[1:4], "big")
                if t == "tfhd":
                    p = 8 + (8 if flags & 1 else 0) + (4 if flags & 2 else 0)
                    if flags & 8:
                        default = int.from_bytes(body[p:p + 4], "big")
                elif t == "trun":
                    count = int.from_bytes(body[4:8], "big")
                    p = 8 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
                    per = sum(4 for bit in (0x100, 0x200, 0x400, 0x800) if flags & bit)
                    if not flags & 0x100:
                        return default * count
                    return sum(int.from_bytes(body[p + i * per:p + i * per + 4], "big") for i in range(count))
    return 0


def target_duration(plan: Plan) -> int:
    """EXT-X-TARGETDURATION: fixed by the plan up front (it must never change while playing);
    audio segments may run up to one AAC frame past a video boundary, hence the margin."""
    b = boundaries(plan)
    longest = max(float(y - x) for x, y in zip(b, b[1:]))
    return max(1, math.ceil(longest + 0.05))


def _write_media_playlist(plan: Plan, out: Path, track: str, n: int, final: bool) -> None:
    durs = _durations(plan, out, track, n)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{target_duration(plan)}",
             "#EXT-X-MEDIA-SEQUENCE:0", f"#EXT-X-PLAYLIST-TYPE:{'VOD' if final else 'EVENT'}",
             "#EXT-X-INDEPENDENT-SEGMENTS", f'#EXT-X-MAP:URI="{layout.STREAM_INIT}"']
    for i, d in enumerate(durs):
        lines += [f"#EXTINF:{d:.6f},", layout.stream_segment_name(i)]
    if final:
        lines.append("#EXT-X-ENDLIST")
    _write(out / layout.media_playlist(track), "\n".join(lines) + "\n")


def rates(out: Path, track: str, durations: list[float]) -> tuple[int, int]:
    """(peak, average) bit/s over the published segments of ``track``."""
    sizes = [(out / layout.stream_segment(track, i)).stat().st_size for i in range(len(durations))]
    if not sizes:
        return 0, 0
    peak = max(8 * s / d for s, d in zip(sizes, durations) if d > 0)
    average = 8 * sum(sizes) / max(1e-9, sum(durations))
    return int(math.ceil(peak)), int(math.ceil(average))


def _write_master(plan: Plan, out: Path, counts: dict[str, int], final: bool) -> None:
    info = plan.info
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio_peak = audio_avg = 0
    for k in range(audio_tracks(plan)):
        track = layout.audio_track(k)
        peak, avg = rates(out, track, _durations(plan, out, track, counts[track]))
        audio_peak, audio_avg = max(audio_peak, peak), max(audio_avg, avg)
        lang = info.audio_languages[k] if k < len(info.audio_languages) else "und"
        name = (info.audio_titles[k] if k < len(info.audio_titles) and info.audio_titles[k] else lang).replace('"', "'")
        attrs = [f'TYPE=AUDIO,GROUP-ID="aac",NAME="{name}"']
        if lang and lang != "und":
            attrs.append(f'LANGUAGE="{lang}"')
        attrs.append(f"DEFAULT={'YES' if k == 0 else 'NO'},AUTOSELECT=YES")
        attrs.append(f'CHANNELS="{info.audio_channels or 2}"')
        attrs.append(f'URI="{layout.media_playlist(track)}"')
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    fps = Fraction(info.frame_rate) if info.frame_rate and Fraction(info.frame_rate) > 0 else Fraction(info.fps)
    for r in plan.renditions:
        peak, avg = rates(out, r.name, _durations(plan, out, r.name, counts[r.name]))
        codec = codecs.rfc6381(out / layout.stream_init(r.name))
        attrs = [f"BANDWIDTH={peak + audio_peak}", f"AVERAGE-BANDWIDTH={avg + audio_avg}",
                 f'CODECS="{codec + (",%s" % AAC_CODEC if audio_tracks(plan) else "")}"',
                 f"RESOLUTION={r.width}x{r.height}", f"FRAME-RATE={float(fps):.3f}"]
        if audio_tracks(plan):
            attrs.append('AUDIO="aac"')
        lines += ["#EXT-X-STREAM-INF:" + ",".join(attrs), layout.media_playlist(r.name)]
    _write(out / layout.MASTER_PLAYLIST, "\n".join(lines) + "\n")


def _iso_duration(seconds: float) -> str:
    return f"PT{seconds:.3f}S"


def _timeline(starts: list[int], durs: list[int]) -> str:
    rows, i = [], 0
    while i < len(durs):
        j = i
        while j + 1 < len(durs) and durs[j + 1] == durs[i] and starts[j + 1] == starts[j] + durs[j]:
            j += 1
        rows.append(f'<S t="{starts[i]}" d="{durs[i]}"' + (f' r="{j - i}"' if j > i else "") + "/>")
        i = j + 1
    return "".join(rows)


def _write_mpd(plan: Plan, out: Path) -> None:
    info = plan.info
    b = boundaries(plan)
    total = float(b[-1] - b[0])
    vstarts = [round(t * VIDEO_TIMESCALE) for t in b[:-1]]
    vdurs = [round(y * VIDEO_TIMESCALE) - round(x * VIDEO_TIMESCALE) for x, y in zip(b, b[1:])]
    fps = info.frame_rate if info.frame_rate and Fraction(info.frame_rate) > 0 else str(Fraction(info.fps).limit_denominator(1001))
    x = ['<?xml version="1.0" encoding="utf-8"?>',
         '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" profiles="urn:mpeg:dash:profile:isoff-live:2011" '
         f'type="static" mediaPresentationDuration="{_iso_duration(total)}" minBufferTime="PT2S">',
         '<Period id="0" start="PT0S">',
         '<AdaptationSet id="0" contentType="video" mimeType="video/mp4" segmentAlignment="true" startWithSAP="1">']
    n = len(plan.segments)
    for r in plan.renditions:
        peak, _ = rates(out, r.name, _durations(plan, out, r.name, n))
        codec = codecs.rfc6381(out / layout.stream_init(r.name))
        x.append(f'<Representation id="{r.name}" codecs="{codec}" bandwidth="{peak}" width="{r.width}" '
                 f'height="{r.height}" frameRate="{fps}">')
        x.append(f'<SegmentTemplate timescale="{VIDEO_TIMESCALE}" initialization="{layout.stream_init(r.name)}" '
                 f'media="{layout.stream_template(r.name)}" startNumber="0">')
        x.append(f"<SegmentTimeline>{_timeline(vstarts, vdurs)}</SegmentTimeline></SegmentTemplate></Representation>")
    x.append("</AdaptationSet>")
    for k in range(audio_tracks(plan)):
        track = layout.audio_track(k)
        init = (out / layout.stream_init(track)).read_bytes()
        rate = _timescale(init)
        starts = [tfdt((out / layout.stream_segment(track, i)).read_bytes()) for i in range(n)]
        durs = [round(d * rate) for d in _audio_durations(out, track, n)]
        peak, _ = rates(out, track, [d / rate for d in durs])
        lang = info.audio_languages[k] if k < len(info.audio_languages) else "und"
        x.append(f'<AdaptationSet id="{k + 1}" contentType="audio" mimeType="audio/mp4" lang={_xml_attr(lang)} '
                 'segmentAlignment="true" startWithSAP="1">')
        x.append(f'<Representation id="{track}" codecs="{AAC_CODEC}" bandwidth="{peak}" '
                 f'audioSamplingRate="{rate}">')
        x.append(f'<SegmentTemplate timescale="{rate}" initialization="{layout.stream_init(track)}" '
                 f'media="{layout.stream_template(track)}" startNumber="0">')
        x.append(f"<SegmentTimeline>{_timeline(starts, durs)}</SegmentTimeline></SegmentTemplate></Representation>")
        x.append("</AdaptationSet>")
    x += ["</Period>", "</MPD>"]
    _write(out / layout.DASH_MANIFEST, "\n".join(x) + "\n")


def _write(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _xml_attr(value: str) -> str:
    """``value`` as a double-quoted XML attribute. (xml.sax.saxutils.quoteattr does the same, but
    importing it pulls in urllib.request, http.client and email: 0.1 s in every pool process.)"""
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&quot;"), ("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#9;")):
        value = value.replace(a, b)
    return f'"{value}"'
