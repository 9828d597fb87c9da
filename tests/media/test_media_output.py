"""What every output of segenc.encode must be, checked by decoding the files it wrote.

The spec: each rendition has exactly the source's frames (count, timestamps, content), plays
from start to end, is H.264 High 4:2:0 8-bit + AAC in a faststart MP4, is sized by the display
aspect ratio (even, square pixels, never upscaled), and carries the audio encoded once.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests import checks

pytestmark = pytest.mark.media

# (clip, ladder, chunk_seconds): encodes whose every rendition must satisfy the universal checks
UNIVERSAL = [
    ("h264_mp4", ("240p",), 0.5),
    ("h264_640x360", ("240p", "360p"), 1.0),
    ("h264_longgop", ("240p",), 1.0),
]


def _source_facts(path: Path) -> dict:
    info = checks.stream_info(path)
    return info


@pytest.fixture(scope="module")
def facts():
    cache: dict[Path, dict] = {}

    def get(path: Path) -> dict:
        if path not in cache:
            cache[path] = _source_facts(path)
        return cache[path]

    return get


def _renditions(res, out: Path):
    assert res.renditions, "no rendition produced"
    for r in res.renditions:
        path = out / r.path if not Path(r.path).is_absolute() else Path(r.path)
        yield r, path


@pytest.mark.parametrize("name,ladder,chunk", UNIVERSAL, ids=[u[0] for u in UNIVERSAL])
def test_frame_count_equals_source(clip, encoded, facts, name, ladder, chunk):
    src = facts(clip(name))
    res, out = encoded(name, ladder=ladder, chunk_seconds=chunk)
    for r, path in _renditions(res, out):
        n = checks.frame_count(path)
        assert n == src["frames"], f"{r.name}: {n} frames decoded, source has {src['frames']}"
        assert r.frames == n, f"{r.name}: result says {r.frames} frames, the file has {n}"


@pytest.mark.parametrize("name,ladder,chunk", UNIVERSAL, ids=[u[0] for u in UNIVERSAL])
def test_duration_within_one_frame(clip, encoded, facts, name, ladder, chunk):
    src = facts(clip(name))
    frame = Fraction(1) / Fraction(src["fps"]).limit_denominator(1001)
    res, out = encoded(name, ladder=ladder, chunk_seconds=chunk)
    for r, path in _renditions(res, out):
        got = checks.stream_info(path)["video_duration"]
        assert abs(got - src["video_duration"]) <= frame, (
            f"{r.name}: video lasts {float(got):.4f} s, source {float(src['video_duration']):.4f} s")
        assert abs(r.duration - float(src["video_duration"])) <= float(frame), (
            f"{r.name}: result.duration {r.duration} vs source {float(src['video_duration']):.4f}")


@pytest.mark.parametrize("name,ladder,chunk", UNIVERSAL, ids=[u[0] for u in UNIVERSAL])
def test_timestamps_monotonic_and_decodes(encoded, name, ladder, chunk):
    res, out = encoded(name, ladder=ladder, chunk_seconds=chunk)
    for r, path in _renditions(res, out):
        assert checks.packet_dts_monotonic(path), f"{r.name}: packet dts not strictly increasing"
        pts = checks.video_pts(path)
        assert all(b > a for a, b in zip(pts, pts[1:])), f"{r.name}: decoded pts not strictly increasing"
        assert checks.decodes_cleanly(path), f"{r.name}: does not decode cleanly start to end"


@pytest.mark.parametrize("name,ladder,chunk", UNIVERSAL, ids=[u[0] for u in UNIVERSAL])
def test_h264_high_yuv420p_aac_faststart(encoded, name, ladder, chunk):
    res, out = encoded(name, ladder=ladder, chunk_seconds=chunk)
    for r, path in _renditions(res, out):
        assert path.suffix == ".mp4" and path.name == f"{r.name}.mp4"
        boxes = [b[0] for b in checks.top_level_boxes(path)]
        assert boxes[0] == "ftyp", f"{r.name}: not an MP4 (first box {boxes[0]!r})"
        assert checks.is_faststart(path), f"{r.name}: moov after mdat ({boxes})"
        info = checks.stream_info(path)
        assert info["video_codec"] == "h264"
        assert info["profile"] == "High", f"{r.name}: profile {info['profile']!r}"
        assert info["pix_fmt"] == "yuv420p", f"{r.name}: pix_fmt {info['pix_fmt']!r}"
        assert info["audio_codec"] == "aac", f"{r.name}: audio {info['audio_codec']!r}"
        assert info["width"] % 2 == 0 and info["height"] % 2 == 0
        assert info["sar"] == 1, f"{r.name}: SAR {info['sar']} (square pixels expected)"
        assert (info["width"], info["height"]) == (r.width, r.height), "result size differs from the file"
        assert r.bytes == path.stat().st_size
        # libx264 runs single-threaded in each worker (the parallelism is across chunks)
        assert checks.x264_options(path).get("threads") == "1", f"{r.name}: x264 not single-threaded"


def test_output_dir_holds_only_renditions_and_manifest(encoded):
    res, out = encoded("h264_640x360", ladder=("240p", "360p"), chunk_seconds=1.0)
    names = sorted(p.name for p in out.iterdir())
    assert names == checks.output_names(["240p", "360p"]), names
    siblings = [p.name for p in out.parent.iterdir() if p.name.startswith(".")]
    assert not siblings, f"temporary files left next to the output: {siblings}"
    doc = json.loads((out / "manifest.json").read_text())
    assert [r["path"] for r in doc["renditions"]] == [r.path for r in res.renditions]


# --------------------------------------------------------------------------------------------
# Sizes: display aspect ratio, even, never upscaled, rungs above the source skipped
# --------------------------------------------------------------------------------------------

def _assert_size(r, path: Path, widths: set[int], heights: set[int]):
    info = checks.stream_info(path)
    assert info["width"] in widths and info["height"] in heights, (
        f"{r.name}: {info['width']}x{info['height']}, expected {sorted(widths)}x{sorted(heights)}")
    assert info["width"] % 2 == 0 and info["height"] % 2 == 0
    assert info["sar"] == 1, f"{r.name}: SAR {info['sar']}"
    assert info["rotation"] == 0, f"{r.name}: output still carries a rotation of {info['rotation']}"
    assert (r.width, r.height) == (info["width"], info["height"])


def test_rung_sizes_follow_aspect_ratio(clip, encoded):
    res, out = encoded("h264_640x360", ladder=("240p", "360p"), chunk_seconds=1.0)
    assert [r.name for r in res.renditions] == ["240p", "360p"]
    for r, path in _renditions(res, out):
        _assert_size(r, path, *checks.rung_size(640, 360, int(r.name[:-1])))


def test_720p_source_gives_480p_and_720p_only(clip, encoded):
    res, out = encoded("h264_720p", ladder=("480p", "720p", "1080p"), chunk_seconds=0.5)
    assert sorted(r.name for r in res.renditions) == ["480p", "720p"]
    assert not (out / "1080p.mp4").exists()
    with pytest.raises(KeyError):
        res.rendition("1080p")
    _assert_size(res.rendition("480p"), out / "480p.mp4", {854}, {480})
    _assert_size(res.rendition("720p"), out / "720p.mp4", {1280}, {720})
    for r, path in _renditions(res, out):
        assert checks.frame_count(path) == 30


def test_source_below_lowest_rung_is_not_upscaled(clip, encoded):
    res, out = encoded("h264_mp4", ladder=("480p", "720p"), chunk_seconds=1.0)
    # One rendition at the source size, named by its real height (never "480p" at 240 lines).
    assert [r.name for r in res.renditions] == ["240p"], "only one rendition, at the source size"
    _assert_size(res.rendition("240p"), out / "240p.mp4", {320}, {240})
    assert not (out / "720p.mp4").exists() and not (out / "480p.mp4").exists()


def test_non_square_sar_uses_display_aspect(clip, encoded):
    # 640x480 at SAR 4:3 displays as 853.3x480 (16:9)
    src = checks.stream_info(clip("h264_sar"))
    assert src["sar"] == Fraction(4, 3), "generator did not write the SAR"
    res, out = encoded("h264_sar", ladder=("360p", "480p"), chunk_seconds=0.5)
    assert [r.name for r in res.renditions] == ["360p", "480p"]
    _assert_size(res.rendition("360p"), out / "360p.mp4", {640}, {360})
    _assert_size(res.rendition("480p"), out / "480p.mp4", {854}, {480})
    # the picture is stretched, not cropped: every source frame is found, in order
    assert checks.frame_indices(out / "480p.mp4") == list(range(src["frames"]))


def test_rotation_is_applied_to_the_pixels(clip, encoded):
    # 640x360 stored, display matrix rotates it 90 degrees CCW: displays as 360x640 (portrait).
    src_path = clip("h264_rot90")
    src = checks.stream_info(src_path)
    assert src["rotation"] == 90, "generator did not write the rotation"
    res, out = encoded("h264_rot90", ladder=("240p", "360p", "480p"), chunk_seconds=0.5)
    # short side 360: 480p is above it and skipped
    assert [r.name for r in res.renditions] == ["240p", "360p"]
    _assert_size(res.rendition("240p"), out / "240p.mp4", *checks.rung_size(360, 640, 240))
    _assert_size(res.rendition("360p"), out / "360p.mp4", {360}, {640})
    # Direction: the output must look like the source as a player shows it, i.e. the stored
    # picture turned 90 degrees counter-clockwise (np.rot90 k=1). Undo that and the barcode
    # painted along the top of the source reads back the frame numbers.
    path = out / "360p.mp4"
    shown = [checks.read_barcode(np.rot90(y, -1)) for _, y in checks.luma_frames(path)]
    assert shown == list(range(src["frames"])), f"picture turned the wrong way? barcodes read {shown[:5]}..."
    src_frames = {i: np.rot90(y, 1) for i, y in checks.luma_frames(src_path)}
    for i, y in checks.luma_frames(path, indices=[0, src["frames"] // 2, src["frames"] - 1]):
        assert checks.psnr(y, src_frames[i]) > 30, f"frame {i}: output differs from the rotated source"


# --------------------------------------------------------------------------------------------
# Audio: encoded once for the whole file, in sync
# --------------------------------------------------------------------------------------------

AUDIO_CASES = [
    ("h264_mp4", ("240p",), 0.5),
    ("h264_longgop", ("240p",), 1.0),
    ("h264_ts", ("240p",), 0.5),
    ("vp9_webm", ("240p",), 0.5),
]


@pytest.mark.parametrize("name,ladder,chunk", AUDIO_CASES, ids=[a[0] for a in AUDIO_CASES])
def test_audio_duration_matches_source(clip, encoded, facts, name, ladder, chunk):
    src = facts(clip(name))
    res, out = encoded(name, ladder=ladder, chunk_seconds=chunk)
    for r, path in _renditions(res, out):
        info = checks.stream_info(path)
        assert info["audio_codec"] == "aac"
        diff = abs(float(info["audio_duration"] - src["audio_duration"]))
        assert diff <= 0.050, (f"{r.name}: audio lasts {float(info['audio_duration']):.4f} s, "
                               f"source {float(src['audio_duration']):.4f} s")


@pytest.mark.parametrize("name,ladder,chunk", AUDIO_CASES, ids=[a[0] for a in AUDIO_CASES])
def test_audio_in_sync_and_continuous(clip, encoded, facts, name, ladder, chunk):
    src_path = clip(name)
    src = facts(src_path)
    frame = 1.0 / float(src["fps"])
    src_onset = checks.audio_onset(src_path)
    res, out = encoded(name, ladder=ladder, chunk_seconds=chunk)
    assert res.segments >= 2, "the test needs a multi-segment encode"
    for r, path in _renditions(res, out):
        off = checks.av_offset(path)
        assert abs(off) < frame, f"{r.name}: audio starts {off * 1000:.1f} ms after the video"
        # in sync by content: the tone starts when it starts in the source
        onset = checks.audio_onset(path)
        assert abs(onset - src_onset) < frame, (
            f"{r.name}: sound starts {onset * 1000:.1f} ms after the first frame, "
            f"source {src_onset * 1000:.1f} ms")
        # encoded once: no glue points (a chunked audio track jumps at every seam)
        gaps = checks.audio_gaps(path)
        assert not gaps, f"{r.name}: audio discontinuities at {gaps[:5]}"


def test_audio_starting_late_stays_in_sync(clip, encoded):
    """Audio that starts 0.2 s after the video must still start 0.2 s after it (as a later pts
    or as leading silence: measured on the sound itself)."""
    src_path = clip("h264_audio_late")
    src_onset = checks.audio_onset(src_path)
    assert src_onset > 0.15, "generator did not delay the audio"
    res, out = encoded("h264_audio_late", ladder=("240p",), chunk_seconds=0.5)
    for r, path in _renditions(res, out):
        onset = checks.audio_onset(path)
        assert abs(onset - src_onset) < 1 / 30, (
            f"{r.name}: sound starts {onset * 1000:.1f} ms after video, source {src_onset * 1000:.1f} ms")
        assert checks.av_offset(path) >= -1 / 30, "audio placed before the first video frame"
        # and it ends when the source's ends
        s0, sd, _ = checks.audio_span(src_path)
        o0, od, _ = checks.audio_span(path)
        assert abs(float((o0 + od) - (s0 + sd))) <= 0.050, (
            f"{r.name}: audio ends at {float(o0 + od):.3f} s, source at {float(s0 + sd):.3f} s")


def test_identical_audio_in_every_rendition(encoded):
    res, out = encoded("h264_640x360", ladder=("240p", "360p"), chunk_seconds=1.0)
    spans = {r.name: checks.audio_span(path) for r, path in _renditions(res, out)}
    assert len(set(spans.values())) == 1, f"renditions carry different audio: {spans}"


def test_source_without_audio(clip, encoded):
    res, out = encoded("h264_noaudio", ladder=("240p",), chunk_seconds=0.5)
    for r, path in _renditions(res, out):
        info = checks.stream_info(path)
        assert info["audio_codec"] is None, f"{r.name}: has an audio stream"
        assert info["streams"] == 1
        assert checks.frame_count(path) == checks.frame_count(clip("h264_noaudio"))
        assert checks.decodes_cleanly(path)
    assert res.source.get("has_audio") is False
