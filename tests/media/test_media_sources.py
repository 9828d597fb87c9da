"""Every kind of source the spec names encodes to exactly its own frames.

Sources: H.264 MP4, HEVC 10-bit MKV, VP9 WebM, AV1 MKV (8- and 10-bit), MPEG-TS, MOV, H.264
10-bit, odd sizes (VP9 4:2:0 and H.264 4:4:4), VFR (MP4 and MKV), a long GOP (one keyframe in
6 s) cut into 1 s chunks. Short chunks put several seams inside every clip, and the
frame-number barcode painted by tests.mediagen shows exactly which source frame each output
frame is: a dropped, doubled or shifted frame at a seam is caught by number and by PSNR.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

import segenc
from tests import checks

pytestmark = pytest.mark.media

SOURCES = [
    # clip, expected probe codec, expected bit depth
    ("h264_mp4", "h264", 8),
    ("hevc10_mkv", "hevc", 10),
    ("vp9_webm", "vp9", 8),
    ("av1_mkv", "av1", 8),
    ("av1_10bit_mkv", "av1", 10),
    ("h264_ts", "h264", 8),
    ("h264_mov", "h264", 8),
    ("h264_10bit", "h264", 10),
    ("vp9_odd_webm", "vp9", 8),
    ("h264_444_odd", "h264", 8),
]
IDS = [s[0] for s in SOURCES]
CHUNK = 0.5


@pytest.mark.parametrize("name,codec,depth", SOURCES, ids=IDS)
def test_probe_identifies_source(clip, name, codec, depth):
    path = clip(name)
    info = segenc.probe(path)
    facts = checks.stream_info(path)
    assert info.codec == codec
    assert info.bit_depth == depth
    assert (info.width, info.height) == (facts["width"], facts["height"])
    assert info.frames == facts["frames"], f"probe counts {info.frames} frames, {facts['frames']} decode"
    assert info.has_audio is True and info.audio_codec == facts["audio_codec"]
    assert abs(info.duration - float(facts["video_duration"])) <= 1 / 30 + 1e-6
    assert info.vfr is False
    assert info.keyframes and info.keyframes[0] == 0
    assert list(info.keyframes) == checks.keyframe_indices(path)
    assert len(info.frame_pts) == info.frames
    tb = Fraction(info.time_base)
    src_pts = checks.video_pts(path, zero_based=True)
    got = [(p - info.frame_pts[0]) * tb for p in info.frame_pts]
    assert got == src_pts, "frame_pts differ from the decoded frame times"


@pytest.mark.parametrize("name,codec,depth", SOURCES, ids=IDS)
def test_encodes_every_frame_in_place(clip, encoded, name, codec, depth):
    src_path = clip(name)
    res, out = encoded(name, ladder=("240p",), chunk_seconds=CHUNK)
    assert res.segments >= 3, f"expected several segments with chunk_seconds={CHUNK}, got {res.segments}"
    src = checks.stream_info(src_path)
    src_pts = checks.video_pts(src_path, zero_based=True)
    (r,) = res.renditions
    path = out / r.path
    info = checks.stream_info(path)
    # 8-bit 4:2:0 H.264 High whatever came in
    assert (info["video_codec"], info["profile"], info["pix_fmt"]) == ("h264", "High", "yuv420p")
    widths, heights = checks.rung_size(src["display_width"], src["display_height"], 240)
    assert info["width"] in widths and info["height"] in heights, f"{info['width']}x{info['height']}"
    # exact frames, exact times
    out_pts = checks.video_pts(path, zero_based=True)
    assert len(out_pts) == len(src_pts), f"{len(out_pts)} frames out, {len(src_pts)} in"
    worst = max(abs(a - b) for a, b in zip(out_pts, src_pts))
    assert worst <= Fraction(1, 1000), f"a frame time is off by {float(worst) * 1000:.2f} ms"
    assert checks.frame_indices(path) == list(range(len(src_pts)))
    assert checks.packet_dts_monotonic(path)
    assert checks.decodes_cleanly(path)


@pytest.mark.parametrize("name", ["h264_mp4", "hevc10_mkv", "vp9_webm", "h264_ts"])
def test_seams_are_invisible(clip, encoded, name):
    """Every output frame looks like the same-numbered source frame (PSNR > 30 dB) and clearly
    better than its neighbours: nothing shifted at the seams."""
    src_path = clip(name)
    res, out = encoded(name, ladder=("240p",), chunk_seconds=CHUNK)
    (r,) = res.renditions
    path = out / r.path
    size = (r.width, r.height)
    src = [y for _, y in checks.luma_frames(src_path, size=size)]
    got = [y for _, y in checks.luma_frames(path)]
    assert len(got) == len(src)
    for i, y in enumerate(got):
        own = checks.psnr(y, src[i])
        assert own > 30, f"frame {i}: PSNR {own:.1f} dB against its source frame"
        for j in (i - 1, i + 1):
            if 0 <= j < len(src):
                assert own > checks.psnr(y, src[j]) + 3, f"frame {i} looks like source frame {j}"


def test_downscaled_seams_keep_content(clip, encoded):
    src_path = clip("h264_640x360")
    res, out = encoded("h264_640x360", ladder=("240p", "360p"), chunk_seconds=1.0)
    for r in res.renditions:
        path = out / r.path
        src = dict(checks.luma_frames(src_path, size=(r.width, r.height)))
        for i, y in checks.luma_frames(path):
            assert checks.psnr(y, src[i]) > 30, f"{r.name} frame {i}"
        assert checks.frame_indices(path) == list(range(len(src)))


@pytest.mark.parametrize("name", ["vfr_mp4", "vfr_mkv"])
def test_vfr_keeps_source_timestamps(clip, encoded, name):
    src_path = clip(name)
    src_pts = checks.video_pts(src_path, zero_based=True)
    steps = {b - a for a, b in zip(src_pts, src_pts[1:])}
    assert len(steps) > 1, "generator made a CFR clip"
    info = segenc.probe(src_path)
    assert info.vfr is True, "probe does not see the clip as VFR"
    res, out = encoded(name, ladder=("240p",), chunk_seconds=CHUNK)
    assert res.segments >= 3
    (r,) = res.renditions
    path = out / r.path
    out_pts = checks.video_pts(path, zero_based=True)
    assert len(out_pts) == len(src_pts), f"{len(out_pts)} frames out, {len(src_pts)} in"
    bad = [(i, float(a), float(b)) for i, (a, b) in enumerate(zip(out_pts, src_pts)) if abs(a - b) > Fraction(1, 1000)]
    assert not bad, f"frame times differ from the source (index, out, src): {bad[:5]}"
    assert checks.frame_indices(path) == list(range(len(src_pts)))
    assert checks.packet_dts_monotonic(path)
    assert checks.decodes_cleanly(path)


def test_long_gop_is_split(clip, encoded):
    src_path = clip("h264_longgop")
    assert checks.keyframe_indices(src_path) == [0], "generator made more than one keyframe"
    res, out = encoded("h264_longgop", ladder=("240p",), chunk_seconds=1.0)
    assert res.segments >= 3, f"a 6 s clip with one keyframe cut into {res.segments} segment(s)"
    assert res.chunk_seconds == 1.0
    path = out / res.rendition("240p").path
    n = checks.frame_count(src_path)
    assert checks.frame_count(path) == n == res.rendition("240p").frames
    assert checks.frame_indices(path) == list(range(n))
    assert checks.video_pts(path, zero_based=True) == checks.video_pts(src_path, zero_based=True)
