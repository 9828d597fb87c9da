"""Analysis helpers for segenc's media tests: decode outputs and measure what the spec promises.

All times are seconds (``Fraction`` where exactness matters). Everything is PyAV + numpy.
"""

from __future__ import annotations

import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Iterator

import av
import numpy as np

from tests.mediagen import BARCODE_BITS, barcode_geometry

__all__ = [
    "video_pts",
    "packet_dts_monotonic",
    "frame_count",
    "stream_info",
    "audio_span",
    "av_offset",
    "decodes_cleanly",
    "is_faststart",
    "top_level_boxes",
    "psnr",
    "luma_frames",
    "frame_indices",
    "read_barcode",
    "display_size",
    "audio_gaps",
    "keyframe_indices",
    "even_candidates",
    "rung_size",
    "leftovers",
    "audio_onset",
    "x264_options",
]


def _open(path: str | os.PathLike):
    return av.open(str(path))


def _time(pts: int | None, tb: Fraction) -> Fraction | None:
    return None if pts is None else Fraction(pts) * tb


# --------------------------------------------------------------------------------------------
# Timestamps and counts
# --------------------------------------------------------------------------------------------

def video_pts(path: str | os.PathLike, *, zero_based: bool = False) -> list[Fraction]:
    """Presentation times (seconds) of every decoded video frame, in decode-output order
    (= presentation order). ``zero_based`` subtracts the first frame's time."""
    with _open(path) as c:
        vs = c.streams.video[0]
        times = []
        for frame in c.decode(vs):
            t = frame.pts if frame.pts is not None else frame.dts
            times.append(Fraction(t) * frame.time_base if t is not None else None)
    if zero_based and times and times[0] is not None:
        t0 = times[0]
        times = [t - t0 for t in times]
    return times


def packet_dts_monotonic(path: str | os.PathLike, *, strict: bool = True) -> bool:
    """Whether the video packets' decode timestamps increase (strictly, by default) through the
    file. A packet without a dts makes it False (flush packets with no data are ignored).
    Meaningful for MP4/MOV/TS, which store dts; Matroska stores only pts, so FFmpeg's guessed
    dts there are not monotonic with B-frames."""
    with _open(path) as c:
        vs = c.streams.video[0]
        last = None
        for pkt in c.demux(vs):
            if pkt.size == 0 and pkt.dts is None:
                continue
            if pkt.dts is None:
                return False
            if last is not None and (pkt.dts <= last if strict else pkt.dts < last):
                return False
            last = pkt.dts
    return True


def frame_count(path: str | os.PathLike) -> int:
    """How many video frames decode."""
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        return sum(1 for _ in c.decode(vs))


def keyframe_indices(path: str | os.PathLike) -> list[int]:
    """Indices (presentation order) of decoded key frames."""
    with _open(path) as c:
        return [i for i, f in enumerate(c.decode(c.streams.video[0])) if f.key_frame]


def audio_span(path: str | os.PathLike) -> tuple[Fraction, Fraction, int] | None:
    """(start, duration, samples) of the first audio stream, from the DECODED samples and their
    pts: start is the first decoded sample's time, duration = samples / sample_rate. None when
    the file has no audio."""
    with _open(path) as c:
        if not c.streams.audio:
            return None
        st = c.streams.audio[0]
        start = None
        samples = 0
        rate = None
        for frame in c.decode(st):
            if start is None and frame.pts is not None:
                start = Fraction(frame.pts) * frame.time_base
            samples += frame.samples
            rate = frame.sample_rate
    if rate is None:
        return None
    return (start if start is not None else Fraction(0)), Fraction(samples, rate), samples


def stream_info(path: str | os.PathLike) -> dict[str, Any]:
    """What the first video (and audio) stream is, as decoded.

    Keys: container, video_codec, profile, pix_fmt, width, height, sar, rotation,
    display_width, display_height, video_start, video_duration (last frame end - first frame
    start, from decoded frames), frames, fps, audio_codec, audio_start, audio_duration,
    audio_sample_rate, audio_channels, streams.
    """
    info: dict[str, Any] = {}
    with _open(path) as c:
        info["container"] = c.format.name
        info["streams"] = len(c.streams)
        vs = c.streams.video[0] if c.streams.video else None
        if vs is not None:
            cc = vs.codec_context
            info["video_codec"] = cc.codec.canonical_name
            info["profile"] = vs.profile or cc.profile
            info["pix_fmt"] = cc.pix_fmt
            info["width"] = cc.width
            info["height"] = cc.height
            sar = vs.sample_aspect_ratio or cc.sample_aspect_ratio
            info["sar"] = Fraction(sar) if sar else Fraction(1)
            times, durations, rotation = [], [], 0
            for i, frame in enumerate(c.decode(vs)):
                if i == 0:
                    rotation = int(frame.rotation or 0)
                    info["pix_fmt"] = frame.format.name
                times.append(Fraction(frame.pts) * frame.time_base)
                durations.append(Fraction(frame.duration or 0) * frame.time_base)
            info["rotation"] = rotation
            info["frames"] = len(times)
            info["video_start"] = times[0] if times else None
            if times:
                last_dur = durations[-1] or (times[-1] - times[-2] if len(times) > 1 else Fraction(0))
                info["video_duration"] = times[-1] + last_dur - times[0]
                info["fps"] = (len(times) / info["video_duration"]) if info["video_duration"] else None
            else:
                info["video_duration"] = Fraction(0)
                info["fps"] = None
            dw, dh = display_size(info["width"], info["height"], info["sar"], rotation)
            info["display_width"], info["display_height"] = dw, dh
        else:
            info.update(video_codec=None, profile=None, pix_fmt=None, width=None, height=None, frames=0)
        if c.streams.audio:
            a = c.streams.audio[0]
            info["audio_codec"] = a.codec_context.codec.canonical_name
            info["audio_sample_rate"] = a.codec_context.sample_rate
            info["audio_channels"] = a.codec_context.channels
        else:
            info["audio_codec"] = None
    span = audio_span(path)
    if span is not None:
        info["audio_start"], info["audio_duration"], info["audio_samples"] = span
    else:
        info["audio_start"] = info["audio_duration"] = None
    return info


def display_size(width: int, height: int, sar: Fraction | None, rotation: int = 0) -> tuple[float, float]:
    """(display width, display height) of a picture: SAR applied to the width, then rotation."""
    w = width * (Fraction(sar) if sar else 1)
    h = Fraction(height)
    if abs(int(rotation)) % 180 == 90:
        w, h = h, w
    return float(w), float(h)


def av_offset(path: str | os.PathLike) -> float:
    """First decoded audio sample's time minus first decoded video frame's time, in seconds."""
    with _open(path) as c:
        v0 = None
        for frame in c.decode(c.streams.video[0]):
            v0 = Fraction(frame.pts) * frame.time_base
            break
    span = audio_span(path)
    if v0 is None or span is None:
        raise ValueError(f"{path}: needs both audio and video")
    return float(span[0] - v0)


def decodes_cleanly(path: str | os.PathLike) -> bool:
    """Every packet of every video and audio stream decodes, start to end, with no error, no
    frame flagged corrupt, and (with error concealment off) no damage the decoder noticed."""
    try:
        with _open(path) as c:
            streams = list(c.streams.video) + list(c.streams.audio)
            if not streams:
                return False
            for s in c.streams.video:
                try:
                    s.codec_context.options = {"err_detect": "explode", "ec": "0"}
                except Exception:
                    pass
            got = {s.index: 0 for s in streams}
            for pkt in c.demux(streams):
                for frame in pkt.decode():
                    if getattr(frame, "is_corrupt", False):
                        return False
                    got[pkt.stream.index] += 1
            return all(n > 0 for n in got.values())
    except (av.FFmpegError, ValueError, OSError):
        return False


# --------------------------------------------------------------------------------------------
# MP4 structure
# --------------------------------------------------------------------------------------------

def top_level_boxes(path: str | os.PathLike) -> list[tuple[str, int, int]]:
    """(type, offset, size) of the top-level ISO-BMFF boxes."""
    boxes = []
    size_total = os.path.getsize(path)
    with open(path, "rb") as f:
        off = 0
        while off + 8 <= size_total:
            f.seek(off)
            size, kind = struct.unpack(">I4s", f.read(8))
            if size == 1:
                size = struct.unpack(">Q", f.read(8))[0]
            elif size == 0:
                size = size_total - off
            if size < 8:
                raise ValueError(f"{path}: bad box size {size} at {off}")
            boxes.append((kind.decode("latin-1"), off, size))
            off += size
    return boxes


def is_faststart(path: str | os.PathLike) -> bool:
    """moov comes before the (first) mdat at the top level of an MP4."""
    boxes = top_level_boxes(path)
    kinds = [b[0] for b in boxes]
    if "moov" not in kinds or "mdat" not in kinds:
        return False
    return kinds.index("moov") < kinds.index("mdat")


# --------------------------------------------------------------------------------------------
# Picture content
# --------------------------------------------------------------------------------------------

def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    """Peak signal-to-noise ratio (dB) of two equally shaped arrays; inf when identical."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(peak * peak / mse)


def luma_frames(path: str | os.PathLike, size: tuple[int, int] | None = None,
                indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(index, 8-bit luma array) of decoded frames in presentation order, optionally scaled to
    ``size`` = (width, height) (bicubic) and limited to ``indices``."""
    wanted = None if indices is None else set(indices)
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        for i, frame in enumerate(c.decode(vs)):
            if wanted is not None and i not in wanted:
                continue
            if size is not None and (frame.width, frame.height) != tuple(size):
                frame = frame.reformat(width=size[0], height=size[1], format="gray", interpolation="BICUBIC")
                yield i, frame.to_ndarray()
            else:
                yield i, frame.to_ndarray(format="gray")
            if wanted is not None and i >= max(wanted):
                break


def read_barcode(luma: np.ndarray) -> int:
    """The frame number painted by tests.mediagen into the top band of an (unrotated) picture."""
    h, w = luma.shape[:2]
    band, block = barcode_geometry(w, h)
    value = 0
    for bit in range(BARCODE_BITS):
        # the middle of each block, away from edges the scaler and the encoder blur
        y0, y1 = band // 4, max(band // 4 + 1, 3 * band // 4)
        x0, x1 = bit * block + block // 4, max(bit * block + block // 4 + 1, bit * block + 3 * block // 4)
        value = (value << 1) | int(float(np.mean(luma[y0:y1, x0:x1])) > 126)
    return value


def frame_indices(path: str | os.PathLike) -> list[int]:
    """The source frame number every decoded frame shows (read from the barcode)."""
    return [read_barcode(y) for _, y in luma_frames(path)]


def audio_gaps(path: str | os.PathLike, tolerance: float = 0.002) -> list[tuple[float, float]]:
    """Discontinuities in the decoded audio: (time, jump in seconds) wherever a frame's pts is
    not the previous frame's pts + its sample count (within ``tolerance`` seconds: Matroska
    rounds to 1 ms). Audio that
    was encoded in pieces and glued shows a jump (or an overlap) at every glue point."""
    gaps: list[tuple[float, float]] = []
    with _open(path) as c:
        if not c.streams.audio:
            return gaps
        expected = None
        for frame in c.decode(c.streams.audio[0]):
            if frame.pts is None:
                continue
            t = Fraction(frame.pts) * frame.time_base
            if expected is not None and abs(t - expected) > tolerance:
                gaps.append((float(t), float(t - expected)))
            expected = t + Fraction(frame.samples, frame.sample_rate)
    return gaps


# --------------------------------------------------------------------------------------------
# Spec oracles
# --------------------------------------------------------------------------------------------

def even_candidates(x: float) -> set[int]:
    """The even integer(s) nearest to ``x`` (two when ``x`` is exactly between two evens)."""
    lo = int(np.floor(x / 2.0)) * 2
    hi = lo + 2
    dlo, dhi = abs(x - lo), abs(hi - x)
    if abs(dlo - dhi) < 1e-9:
        return {lo, hi}
    return {lo} if dlo < dhi else {hi}


def rung_size(display_w: float, display_h: float, short: int) -> tuple[set[int], set[int]]:
    """Acceptable (widths, heights) of a rung whose short side is ``short`` for a picture that
    displays as ``display_w`` x ``display_h``: the short side is ``short`` (made even), the long
    side follows the display aspect ratio, rounded to the nearest even number."""
    if display_w >= display_h:
        return even_candidates(short * display_w / display_h), even_candidates(short)
    return even_candidates(short), even_candidates(short * display_h / display_w)


def output_names(rungs, audio_tracks: int = 1) -> list[str]:
    """What an output directory holds at its top level: ``<rung>.mp4`` downloads, the manifest,
    the stream (master.m3u8, stream.mpd) and one stream folder per rung and audio track."""
    names = [f"{r}.mp4" for r in rungs] + list(rungs) + [f"audio{k}" for k in range(audio_tracks)]
    return sorted(names + ["manifest.json", "master.m3u8", "stream.mpd"])


def leftovers(out_dir: str | os.PathLike) -> list[str]:
    """What a refused encode left behind: the output dir's content (or the dir itself) and any
    sibling of it in its parent (temp dirs)."""
    out_dir = Path(out_dir)
    found: list[str] = []
    if out_dir.exists():
        found += [str(p) for p in out_dir.rglob("*")] or [str(out_dir)]
    if out_dir.parent.exists():
        found += [str(p) for p in out_dir.parent.iterdir() if p != out_dir]
    return found


def audio_onset(path: str | os.PathLike, threshold: float = 0.05) -> float | None:
    """When the sound starts, in seconds after the first decoded video frame: the time of the
    first decoded sample whose magnitude exceeds ``threshold`` (full scale 1.0). Unlike
    :func:`av_offset` this sees through leading silence, so it measures A/V sync by content
    (a late audio start may be kept as a late pts or as padded silence; both are in sync)."""
    with _open(path) as c:
        v0 = None
        for frame in c.decode(c.streams.video[0]):
            v0 = Fraction(frame.pts) * frame.time_base
            break
    with _open(path) as c:
        if not c.streams.audio:
            return None
        for frame in c.decode(c.streams.audio[0]):
            data = frame.to_ndarray()
            if data.dtype.kind in "iu":
                data = data.astype(np.float64) / float(np.iinfo(data.dtype).max)
            if not frame.format.is_planar:
                data = data.reshape(-1, len(frame.layout.channels)).T
            loud = np.nonzero(np.max(np.abs(data), axis=0) > threshold)[0]
            if loud.size:
                t = Fraction(frame.pts) * frame.time_base + Fraction(int(loud[0]), frame.sample_rate)
                return float(t - (v0 or 0))
    return None


def x264_options(path: str | os.PathLike) -> dict[str, str]:
    """The encoder settings libx264 writes into its SEI ("x264 - core N - ... options: cabac=1
    ref=3 ... crf=23.0 ..."), as a dict; empty when the file has none."""
    data = Path(path).read_bytes()
    at = data.find(b"x264 - core")
    if at < 0:
        return {}
    end = data.find(b"\x00", at)
    text = data[at:end if end > 0 else at + 4096].decode("latin-1")
    _, _, opts = text.partition("options: ")
    out: dict[str, str] = {}
    for item in opts.split():
        key, sep, value = item.partition("=")
        if sep:
            out[key] = value
    return out


def keyframe_times(path: str | os.PathLike) -> list[float]:
    """Presentation times (s, from the stream's start, rounded to 1 ms) of the keyframe packets."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        start = (v.start_time or 0) * v.time_base
        return sorted(round(float(p.pts * p.time_base - start), 3) for p in c.demux(v)
                      if p.is_keyframe and p.pts is not None and p.size)


def peak_bits(path: str | os.PathLike, window: float = 2.0) -> int:
    """The most video bits in any ``window`` seconds of presentation time (windows start at frames)."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        pk = sorted((float(p.pts * p.time_base), p.size * 8) for p in c.demux(v) if p.pts is not None and p.size)
    return max(sum(b for u, b in pk[i:] if u < t + window) for i, (t, _) in enumerate(pk))


def hdr10_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The first decoded frame's mastering display (R G B WP x/y, min/max cd/m2) and content light
    level (MaxCLL, MaxFALL), as numbers rounded for comparison; keys absent when the frame has none."""
    with av.open(str(path)) as c:
        f = next(c.decode(video=0))
    out: dict[str, Any] = {}
    for sd in f.side_data:
        name = str(sd.type).rpartition(".")[2]
        if name == "MASTERING_DISPLAY_METADATA":
            v = struct.unpack("<22i", bytes(sd)[:88])
            out["mastering"] = tuple(round(v[i] / (v[i + 1] or 1), 3) for i in range(0, 20, 2))
        elif name == "CONTENT_LIGHT_LEVEL":
            out["light"] = struct.unpack("<2I", bytes(sd)[:8])
    return out


def first_frame_colour(path: str | os.PathLike) -> dict[str, Any]:
    """Pixel format and colour tags of the first decoded video frame."""
    with av.open(str(path)) as c:
        f = next(c.decode(video=0))
        return {"pix_fmt": f.format.name, "color_primaries": int(f.color_primaries), "color_trc": int(f.color_trc),
                "colorspace": int(f.colorspace), "color_range": int(f.color_range)}


# --- streams (HLS / DASH) --------------------------------------------------------------------

def playlist_tags(path: str | os.PathLike) -> list[tuple[str, str]]:
    """An m3u8 as (tag, value) rows; URI lines come as ("URI", line)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            tag, _, value = line[1:].partition(":")
            rows.append((tag, value))
        elif line.strip():
            rows.append(("URI", line.strip()))
    return rows


def attributes(value: str) -> dict[str, str]:
    """An HLS attribute list (``A=1,B="x,y"``) as a dict (quotes removed)."""
    out, key, buf, quoted = {}, None, "", False
    for ch in value + ",":
        if ch == '"':
            quoted = not quoted
        elif ch == "=" and key is None and not quoted:
            key, buf = buf, ""
        elif ch == "," and not quoted:
            out[key] = buf
            key, buf = None, ""
        else:
            buf += ch
    return out


def stream_packets(url: str | os.PathLike) -> dict[str, list[tuple[int, int]]]:
    """Every (dts, pts) per stream type+index of an HLS playlist read with FFmpeg's demuxer."""
    out: dict[str, list[tuple[int, int]]] = {}
    with av.open(str(url), "r", format="hls", options={"protocol_whitelist": "file"}) as c:
        for pkt in c.demux():
            if pkt.dts is None or pkt.size == 0:
                continue
            out.setdefault(f"{pkt.stream.type}{pkt.stream.index}", []).append((pkt.dts, pkt.pts))
    return out


def first_tfdt_and_cts(segment: str | os.PathLike) -> tuple[int, int]:
    """A CMAF media segment's first tfdt and its first sample's composition offset (0 if none):
    where its first sample is presented, in the track's timescale, as a player sees it."""
    data = Path(segment).read_bytes()

    def walk(start, end):
        i = start
        while i + 8 <= end:
            size = int.from_bytes(data[i:i + 4], "big")
            yield data[i + 4:i + 8].decode("latin-1"), i, size
            i += size

    for kind, off, size in walk(0, len(data)):
        if kind == "moof":
            for sub, soff, ssize in walk(off + 8, off + size):
                if sub == "traf":
                    base, cts = 0, 0
                    for t, toff, tsize in walk(soff + 8, soff + ssize):
                        body = data[toff + 8:toff + tsize]
                        if t == "tfdt":
                            base = int.from_bytes(body[4:12] if body[0] == 1 else body[4:8], "big")
                        if t == "trun":
                            flags = int.from_bytes(body[1:4], "big")
                            p = 8 + (4 if flags & 1 else 0) + (4 if flags & 4 else 0)
                            if flags & 0x800:
                                p += sum(4 for bit in (0x100, 0x200, 0x400) if flags & bit)
                                cts = int.from_bytes(body[p:p + 4], "big", signed=body[0] == 1)
                    return base, cts
    raise ValueError(f"{segment}: no moof")


def timescale(init: str | os.PathLike) -> int:
    data = Path(init).read_bytes()
    k = data.find(b"mdhd")
    off = k + 8 + (16 if data[k + 4] == 1 else 8)
    return int.from_bytes(data[off:off + 4], "big")


def ffmpeg_cli() -> str | None:
    """The ffmpeg CLI of the imageio-ffmpeg wheel (the test/bench extra), if installed."""
    try:
        import imageio_ffmpeg
        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # noqa: BLE001 - not installed: the caller skips
        return None


def stream_packets_url(url: str) -> dict[str, list[tuple[int, int]]]:
    """``stream_packets`` over HTTP."""
    out: dict[str, list[tuple[int, int]]] = {}
    with av.open(url, "r", format="hls", options={"protocol_whitelist": "http,tcp"}) as c:
        for pkt in c.demux():
            if pkt.dts is not None and pkt.size:
                out.setdefault(f"{pkt.stream.type}{pkt.stream.index}", []).append((pkt.dts, pkt.pts))
    return out
