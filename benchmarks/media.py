"""Describe encoded outputs (not timed): frame counts, durations, timestamps, size, encoder settings."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import av

_X264_RE = re.compile(rb"x264 - core (\d+)[^\x00]*? - H\.264/MPEG-4 AVC codec - Copyleft [^\x00]*? - options: ([^\x00]*)")


def x264_info(path: str | Path, limit: int = 4 << 20) -> dict[str, str] | None:
    """The x264 version and option string from the SEI that libx264 writes into its first frame."""
    with open(path, "rb") as f:
        data = f.read(limit)
    m = _X264_RE.search(data)
    if not m:
        return None
    return {"core": m.group(1).decode(), "options": m.group(2).decode(errors="replace").strip()}


def x264_option(info: dict[str, str] | None, key: str) -> str | None:
    if not info:
        return None
    for tok in info["options"].split():
        k, _, v = tok.partition("=")
        if k == key:
            return v
    return None


def describe(path: str | Path) -> dict[str, Any]:
    """Frames (video packets), duration, dimensions, bytes, bitrates and timing facts of one file.

    Timing facts, for integrity checks against the source: ``video_duration`` (the video stream's
    duration, else its packets' pts span), ``dts_monotonic`` (video packet DTS strictly
    increasing; ``dts_violations`` counts the packets where it is not), ``first_video_pts`` (the
    smallest video pts), ``first_audio_pts`` (the first audio packet's pts: negative when AAC
    priming samples sit before zero behind an edit list) and ``av_offset`` = first audio pts -
    first video pts, ``audio_duration`` (the audio stream's), all in seconds.
    """
    path = Path(path)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = 0
        v_bytes = 0
        first = last = None
        last_end = None
        prev_dts = None
        dts_violations = 0
        first_audio = None
        for pkt in c.demux(*(s for s in (v, a) if s is not None)):
            if pkt.size == 0:
                continue
            if pkt.stream.index != v.index:
                if first_audio is None and pkt.pts is not None:
                    first_audio = float(pkt.pts * pkt.time_base)
                continue
            frames += 1
            v_bytes += pkt.size
            if pkt.dts is not None:
                if prev_dts is not None and pkt.dts <= prev_dts:
                    dts_violations += 1
                prev_dts = pkt.dts
            if pkt.pts is not None:
                first = pkt.pts if first is None else min(first, pkt.pts)
                last = pkt.pts if last is None else max(last, pkt.pts)
                end = pkt.pts + (pkt.duration or 0)
                last_end = end if last_end is None else max(last_end, end)
        duration = float(c.duration / av.time_base) if c.duration else 0.0
        tb = v.time_base
        if v.duration and tb:
            v_duration = float(v.duration * tb)
        elif first is not None and last_end is not None and tb:
            v_duration = float((last_end - first) * tb)
        else:
            v_duration = None
        first_video = float(first * tb) if first is not None and tb else None
        a_duration = float(a.duration * a.time_base) if a is not None and a.duration and a.time_base else None
        rate = v.average_rate or v.guessed_rate
        info = {
            "path": str(path),
            "bytes": path.stat().st_size,
            "video_bytes": v_bytes,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "profile": v.profile,
            "pix_fmt": v.codec_context.pix_fmt,
            "frames": frames,
            "duration": duration,
            "video_bitrate": int(v_bytes * 8 / duration) if duration else 0,
            "audio": a.codec_context.name if a else None,
            "fps": float(rate) if rate else None,
            "video_duration": v_duration,
            "dts_monotonic": dts_violations == 0,
            "dts_violations": dts_violations,
            "first_video_pts": first_video,
            "first_audio_pts": first_audio,
            "audio_duration": a_duration,
            "av_offset": (first_audio - first_video) if first_audio is not None and first_video is not None
            else None,
        }
    x = x264_info(path)
    info["x264_core"] = x["core"] if x else None
    info["x264_threads"] = x264_option(x, "threads")
    info["x264_lookahead_threads"] = x264_option(x, "lookahead_threads")
    info["x264_sliced_threads"] = x264_option(x, "sliced_threads")
    info["x264_options"] = x["options"] if x else None
    return info
