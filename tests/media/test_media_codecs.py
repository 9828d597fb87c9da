"""Encoding controls, end to end on real encodes: codecs, keyframes on the gop grid, float CRF,
per-rung peak-rate caps, colour and bit depth carried from the source."""

from __future__ import annotations

import re
from pathlib import Path

import av
import pytest

import segenc
from segenc.codecs import rfc6381
from segenc.settings import Settings
from tests import checks

CODECS = {"h264": ("h264", "avc1"), "hevc": ("hevc", "hvc1"), "av1": ("av1", "av01")}
# RFC 6381 CODECS strings (for playlists): H.264 High, Main or (x264 ultrafast) Constrained Baseline;
# HEVC Main (1.6) / Main10 (2.4); AV1 Main profile with its depth.
RFC6381 = {"h264": r"avc1\.(64|4D|42)[0-9A-F]{4}", "hevc": r"hvc1\.1\.6\.L\d+(\.[0-9A-F]{2})*",
           "av1": r"av01\.0\.\d\dM\.08"}
RFC6381_10BIT = {"hevc": r"hvc1\.2\.4\.L\d+(\.[0-9A-F]{2})*", "av1": r"av01\.0\.\d\dM\.10"}


def _outputs(res):
    return [(r, Path(res.out_dir) / r.path) for r in res.renditions]


def _codec_name(path: Path) -> tuple[str, str]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        return v.codec_context.codec.canonical_name, v.codec_tag


@pytest.mark.parametrize("codec", list(CODECS))
def test_codec_in_output_with_idrs_on_the_gop_grid_in_every_rung(clip, encoded, codec):
    # gop 0.6 s does not divide the 1 s chunks: IDRs at every 0.6 s multiple AND at the cut (1.0 s).
    res, out = encoded("h264_640x360", ladder=("240p", "360p"), chunk_seconds=1.0,
                       settings=Settings(codec=codec, gop=0.6, preset="ultrafast"))
    assert [r.name for r in res.renditions] == ["240p", "360p"]
    name, tag = CODECS[codec]
    keys = {}
    source_times = checks.video_pts(clip("h264_640x360"), zero_based=True)
    for r, path in _outputs(res):
        assert _codec_name(path) == (name, tag), f"{r.name}: {_codec_name(path)}"
        assert checks.frame_count(path) == 60
        assert checks.video_pts(path, zero_based=True) == source_times, f"{r.name}: timestamps moved"
        assert checks.decodes_cleanly(path)
        assert re.fullmatch(RFC6381[codec], rfc6381(path)), rfc6381(path)
        keys[r.name] = checks.keyframe_times(path)
    assert keys["240p"] == keys["360p"] == [0.0, 0.6, 1.0, 1.2, 1.8], keys


def test_default_gop_puts_an_idr_every_two_seconds(clip, encoded):
    # The source has one keyframe in 6 s; segenc's output has one every 2 s (chunks of 2 s).
    res, out = encoded("h264_longgop", ladder=("240p",), chunk_seconds=2.0)
    assert res.renditions[0].frames == 180
    assert checks.keyframe_times(out / "240p.mp4") == [0.0, 2.0, 4.0]


def test_float_crf_reaches_x264(encoded):
    res, out = encoded("h264_mp4", ladder=("240p",), chunk_seconds=1.0, settings=Settings(crf=18.5))
    assert float(checks.x264_options(out / "240p.mp4")["crf"]) == 18.5


def test_float_crf_reaches_x265(encoded):
    res, out = encoded("h264_mp4", ladder=("240p",), chunk_seconds=1.0, settings=Settings(codec="hevc", crf=30.5))
    data = (out / "240p.mp4").read_bytes()
    sei = data[data.find(b"x265 (build"):][:4000]
    assert b" crf=30.5 " in sei, sei[:200]


def test_float_crf_reaches_svtav1(encoded):
    # SVT-AV1 writes no settings into the stream: a fractional CRF must give a third, different
    # encode between its neighbours (the FFmpeg wrapper's own crf option would round 40.5 to 40).
    sizes = {}
    for crf in (40, 40.5, 41):
        res, out = encoded("h264_640x360", ladder=("360p",), chunk_seconds=1.0,
                           settings=Settings(codec="av1", crf=crf, preset="ultrafast"))
        sizes[crf] = (out / "360p.mp4").read_bytes()
    assert len({sizes[40], sizes[40.5], sizes[41]}) == 3, "CRF 40.5 encoded like one of its neighbours"


def test_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="h264, hevc, av1"):
        Settings(codec="vp8")
    with pytest.raises(ValueError, match="0 to 63"):
        Settings(codec="av1", crf=70)
    with pytest.raises(ValueError, match="gop"):
        Settings(gop=0)
    assert Settings(codec="av1", crf=55.5).crf == 55.5


# --------------------------------------------------------------------------------------------
# Peak-rate caps: the peak over any 2 s window within the VBV bound (maxrate x 2 s + bufsize),
# with 15% slack; the same clip uncapped is far over that bound, so the check can fail.
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", list(CODECS))
def test_rate_cap_bounds_the_peak(encoded, codec):
    settings = Settings(codec=codec, crf=12 if codec != "av1" else 20, preset="ultrafast")
    bound = (300_000 * 2 + 600_000) * 1.15
    capped, out_c = encoded("h264_360_4s", ladder=("360p@300k",), chunk_seconds=1.0, settings=settings)
    free, out_f = encoded("h264_360_4s", ladder=("360p",), chunk_seconds=1.0, settings=settings)
    assert capped.renditions[0].name == "360p", "the cap is not part of the name"
    peak_capped = checks.peak_bits(out_c / "360p.mp4")
    peak_free = checks.peak_bits(out_f / "360p.mp4")
    assert peak_free > 2 * bound, f"uncapped peak {peak_free} is too low to tell a cap apart"
    assert peak_capped <= bound, f"{codec}: {peak_capped} bits in 2 s, cap allows about {bound:.0f}"


def test_custom_rungs_and_rungs_above_the_source(encoded):
    res, out = encoded("h264_640x360", ladder=("200p", "300p@400k", "1080p"), chunk_seconds=1.0)
    # 1080p is above the 360-line source: skipped, no file named for it
    assert [(r.name, r.width, r.height) for r in res.renditions] == [("200p", 356, 200), ("300p", 534, 300)]
    assert sorted(p.name for p in out.iterdir()) == checks.output_names(["200p", "300p"])
    for r, path in _outputs(res):
        info = checks.stream_info(path)
        assert (info["width"], info["height"]) == (r.width, r.height)


# --------------------------------------------------------------------------------------------
# Colour and depth
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("codec", ["hevc", "av1"])
@pytest.mark.parametrize("source,trc", [("hdr10_mkv", 16), ("hlg_mkv", 18)])
def test_hdr_10bit_keeps_depth_and_signalling(clip, encoded, codec, source, trc):
    src = checks.first_frame_colour(clip(source))
    assert src["pix_fmt"] == "yuv420p10le" and src["color_trc"] == trc, f"generator wrote {src}"
    res, out = encoded(source, ladder=("240p",), chunk_seconds=1.0, settings=Settings(codec=codec, preset="ultrafast"))
    got = checks.first_frame_colour(out / "240p.mp4")
    assert got == {"pix_fmt": "yuv420p10le", "color_primaries": 9, "color_trc": trc, "colorspace": 9,
                   "color_range": 1}, got
    assert re.fullmatch(RFC6381_10BIT[codec], rfc6381(out / "240p.mp4")), rfc6381(out / "240p.mp4")
    if source == "hdr10_mkv":  # the HDR10 static metadata too (mastering display, content light)
        want = checks.hdr10_metadata(clip(source))
        assert want["light"] == (1000, 400) and want["mastering"][-1] == 1000, f"generator wrote {want}"
        assert checks.hdr10_metadata(out / "240p.mp4") == want
    if codec == "hevc":
        with av.open(str(out / "240p.mp4")) as c:
            assert c.streams.video[0].codec_context.profile == "Main 10"


def test_10bit_sdr_stays_10bit_in_hevc(encoded):
    res, out = encoded("hevc10_mkv", ladder=("240p",), chunk_seconds=1.0, settings=Settings(codec="hevc"))
    assert checks.first_frame_colour(out / "240p.mp4")["pix_fmt"] == "yuv420p10le"


def test_bt709_tags_carried_to_h264(encoded):
    res, out = encoded("bt709_mp4", ladder=("240p",), chunk_seconds=1.0)
    assert checks.first_frame_colour(out / "240p.mp4") == {
        "pix_fmt": "yuv420p", "color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}


def test_h264_from_hdr_is_refused_naming_the_codecs_that_carry_it(clip, fresh_out):
    with pytest.raises(segenc.InputError, match=r"HDR.*hevc or av1") as err:
        segenc.encode(clip("hdr10_mkv"), fresh_out, ladder=("240p",), workers=1)
    assert "zscale" in str(err.value)
    assert checks.leftovers(fresh_out) == []
