"""Shared fixtures of the media suite: every synthetic clip and every encode is made ONCE per
session (lazily, on first use), so tests that look at different properties of the same output
share one real encode.

    def test_x(clip, encoded):
        src = clip("h264_mp4")                                   # Path of the generated source
        res, out = encoded("h264_mp4", ladder=("240p",), chunk_seconds=0.5)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

import pytest

from tests import mediagen

# name -> (file name, make_clip keyword arguments). Tiny and short: the whole set takes ~10 s.
CLIPS: dict[str, tuple[str, dict[str, Any]]] = {
    # H.264 + AAC in MP4, 320x240, 30 fps, 2 s, keyframe every 1 s, B-frames
    "h264_mp4": ("h264.mp4", {}),
    "h264_noaudio": ("h264_noaudio.mp4", {"audio": False}),
    "h264_faststart": ("h264_faststart.mp4", {"faststart": True}),
    "h264_10bit": ("h264_10bit.mp4", {"pix_fmt": "yuv420p10le"}),
    "h264_444_odd": ("h264_444_odd.mp4", {"pix_fmt": "yuv444p", "width": 321, "height": 241}),
    "h264_640x360": ("h264_640x360.mp4", {"width": 640, "height": 360}),
    "h264_720p": ("h264_720p.mp4", {"width": 1280, "height": 720, "seconds": 1.0}),
    "h264_sar": ("h264_sar.mp4", {"width": 640, "height": 480, "sar": "4:3", "seconds": 1.0}),
    "h264_rot90": ("h264_rot90.mp4", {"width": 640, "height": 360, "rotation": 90, "seconds": 1.0}),
    "h264_longgop": ("h264_longgop.mp4", {"seconds": 6.0, "gop": 1000}),
    "h264_audio_late": ("h264_audio_late.mp4", {"audio_offset": 0.2}),
    "hevc10_mkv": ("hevc10.mkv", {"codec": "libx265", "pix_fmt": "yuv420p10le"}),
    "vp9_webm": ("vp9.webm", {"codec": "libvpx-vp9"}),
    "vp9_odd_webm": ("vp9_odd.webm", {"codec": "libvpx-vp9", "width": 321, "height": 241}),
    "av1_mkv": ("av1.mkv", {"codec": "libsvtav1"}),
    "av1_10bit_mkv": ("av1_10bit.mkv", {"codec": "libsvtav1", "pix_fmt": "yuv420p10le"}),
    "h264_ts": ("h264.ts", {}),
    "h264_mov": ("h264.mov", {}),
    "vfr_mp4": ("vfr.mp4", {"vfr": True}),
    "vfr_mkv": ("vfr.mkv", {"vfr": True}),
    # colour-tagged sources (the pictures are the same pattern; only the signalling differs)
    "hdr10_mkv": ("hdr10.mkv", {"codec": "libx265", "pix_fmt": "yuv420p10le", "colour": mediagen.HDR10_PQ,
                                "audio": False, "hdr10_metadata": True}),
    "hlg_mkv": ("hlg.mkv", {"codec": "libx265", "pix_fmt": "yuv420p10le", "colour": mediagen.HLG, "audio": False}),
    "bt709_mp4": ("bt709.mp4", {"colour": mediagen.BT709, "audio": False}),
    # two audio tracks (eng, fra), two mov_text tracks, a title; video starts 0.2 s after the audio
    "tracks_mp4": ("tracks.mp4", {"audio_languages": ("eng", "fra"), "audio_titles": ("English", "Français"),
                                  "subtitles": ("eng", "spa"), "title": "Test clip"}),
    # 4 s of 640x360 without audio: enough seconds for a peak-rate window
    "h264_360_4s": ("h264_360_4s.mp4", {"width": 640, "height": 360, "seconds": 4.0, "audio": False}),
}


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip(media_dir) -> Callable[[str], Path]:
    """clip(name) -> Path of the generated source clip ``name`` (see CLIPS)."""
    cache: dict[str, Path] = {}
    lock = threading.Lock()

    def get(name: str) -> Path:
        with lock:
            if name not in cache:
                filename, kwargs = CLIPS[name]
                cache[name] = mediagen.make_clip(media_dir / "src" / filename, **kwargs)
            return cache[name]

    return get


@pytest.fixture(scope="session")
def encoded(clip, tmp_path_factory) -> Callable[..., tuple[Any, Path]]:
    """encoded(clip_name, ladder=..., chunk_seconds=..., workers=2, **kw) -> (EncodeResult, out_dir).

    One real ``segenc.encode`` per distinct argument set, shared by the whole session. A failed
    encode is cached too (its exception re-raised) so one library bug does not cost N encodes.
    """
    import segenc

    root = tmp_path_factory.mktemp("encoded")
    cache: dict[tuple, Any] = {}

    def run(name: str, ladder: tuple[str, ...] = ("240p",), chunk_seconds: float | None = 1.0,
            workers: int = 2, **kw: Any):
        key = (name, tuple(ladder), chunk_seconds, workers, tuple(sorted(kw.items())))
        if key not in cache:
            out = root / f"{name}-{'_'.join(ladder)}-{chunk_seconds}-{workers}-{len(cache)}"
            try:
                res = segenc.encode(clip(name), out, ladder=tuple(ladder), chunk_seconds=chunk_seconds,
                                    workers=workers, **kw)
                cache[key] = (res, out)
            except Exception as exc:  # noqa: BLE001 - re-raised to every test that asks
                cache[key] = exc
        got = cache[key]
        if isinstance(got, Exception):
            raise got
        return got

    return run


@pytest.fixture
def bad_dir(tmp_path) -> Path:
    d = tmp_path / "bad"
    d.mkdir()
    return d


@pytest.fixture
def fresh_out(tmp_path) -> Path:
    """An output directory path that does not exist yet, in a parent holding nothing else."""
    parent = tmp_path / "outparent"
    parent.mkdir()
    return parent / "out"

