"""One frame of a video as a small JPEG (the service's job list shows it).

The frame is the first one decoded after a seek to 10 % of the duration (a keyframe at or before
it), scaled to ``width`` pixels wide at the source's display aspect ratio (SAR applied; a rotated
source keeps its stored orientation), written with FFmpeg's MJPEG encoder inside PyAV.
"""

from __future__ import annotations

import os
from pathlib import Path

import av

from .model import MediaInfo
from .storage import atomic_path

WIDTH = 320


def write_thumbnail(source: str | os.PathLike, dest: str | os.PathLike, info: MediaInfo,
                    width: int = WIDTH) -> Path:
    """Write ``dest`` (a JPEG) from ``source``, whose probe is ``info``; returns ``dest``.

    Raises:
        av.FFmpegError, OSError: the frame could not be decoded or written (callers treat a
        missing thumbnail as cosmetic).
    """
    dest = Path(dest)
    dw, dh = info.display_width or info.width, info.display_height or info.height
    w = min(width, dw) // 2 * 2 or 2
    h = max(2, round(w * dh / dw / 2) * 2)
    with av.open(str(source)) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        at = info.start_time + info.duration * 0.1
        if vs.time_base and at > info.start_time:
            c.seek(int(at / vs.time_base), stream=vs, backward=True)
        frame = next(c.decode(vs))
    if info.rotation in (90, 270, -90):
        src_w, src_h = h, w  # scale before rotating: the stored picture is the other way round
    else:
        src_w, src_h = w, h
    img = frame.reformat(width=src_w, height=src_h, format="yuvj420p")
    with atomic_path(dest) as tmp:
        with av.open(str(tmp), "w", format="image2") as out:
            st = out.add_stream("mjpeg", rate=1)
            st.width, st.height, st.pix_fmt = src_w, src_h, "yuvj420p"
            img.pts = 0
            for pkt in st.encode(img):
                out.mux(pkt)
            for pkt in st.encode(None):
                out.mux(pkt)
    return dest
