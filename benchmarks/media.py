"""Describe encoded outputs (not timed): frame counts, duration, size, encoder settings."""

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
    """Frames (video packets), duration, dimensions, bytes and bitrates of one output file."""
    path = Path(path)
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        frames = 0
        v_bytes = 0
        first = last = None
        for pkt in c.demux(v):
            if pkt.size == 0:
                continue
            frames += 1
            v_bytes += pkt.size
            if pkt.pts is not None:
                first = pkt.pts if first is None else min(first, pkt.pts)
                last = pkt.pts if last is None else max(last, pkt.pts)
        duration = float(c.duration / av.time_base) if c.duration else 0.0
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
        }
    x = x264_info(path)
    info["x264_core"] = x["core"] if x else None
    info["x264_threads"] = x264_option(x, "threads")
    info["x264_lookahead_threads"] = x264_option(x, "lookahead_threads")
    info["x264_sliced_threads"] = x264_option(x, "sliced_threads")
    info["x264_options"] = x["options"] if x else None
    return info
